# interpflow: the concept benchmark (AxBench protocol), the SAE benchmark (SAEBench protocol) and the
# circuit benchmark (InterpBench protocol) as one Snakemake workflow.
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
include: "workflow/rules/saebench.smk"
include: "workflow/rules/circuits.smk"
include: "workflow/rules/report.smk"


# Pandas-only summaries run where Snakemake runs, not as cluster jobs: on SLURM each would wait in
# the queue and parse the workflow again for a second of work.
localrules:
    all,
    run_config,
    imbalance_pool,
    evaluate_detection,
    evaluate_steering,
    leaderboard,
    saebench_leaderboard,
    saebench_eval_results,
    saebench_texts,
    circuit_leaderboard,


rule all:
    default_target: True
    input:
        LEADERBOARD,
        SAEBENCH_OUTPUTS,
        CIRCUIT_OUTPUTS,
        f"{RESULTS}/config.yaml",
