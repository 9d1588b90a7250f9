# interpflow: the concept benchmark (AxBench protocol) as a Snakemake workflow.
#   snakemake -c2                                   # the default experiment (config/experiment/demo.yaml)
#   snakemake -c2 --config overrides='["experiment=demo_two_models"]'
# All logic lives in the `interpflow` package; every rule calls one `interpflow <stage>` command.

from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/shared.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/steering.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        LEADERBOARD,
