"""Every setting is checked before any job: each bad value below stops compose + validate + preflight
(what the Snakefile runs when it is parsed, workflow/rules/common.smk) with one ConfigError whose
message names the key, the value and what is allowed. The issue's cases first, then at least one per
setting section; every shipped experiment and preset must still pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interpflow.config import compose, validate
from interpflow.errors import ConfigError
from interpflow.methods import METHODS
from interpflow.preflight import preflight
from interpflow.ranges import problems

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PRETRAINED = "+sae@saes.scope=gemma_scope"

# (overrides, fragments the message must contain: the key, the value, what is allowed)
BAD_SETTINGS = [
    # the cases
    (["experiment=tiny", "methods.probe.epochs=-3"], ["methods.probe.epochs is -3; it must be an integer >= 1"]),
    (["experiment=tiny", "methods.probe.epochs=0"], ["methods.probe.epochs is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "methods.probe.batch_size=0"], ["methods.probe.batch_size is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "methods.probe.lr=-1"], ["methods.probe.lr is -1; it must be a number > 0"]),
    (["experiment=tiny", "methods.probe.epochs=3.0"], ["methods.probe.epochs is 3.0; it must be an integer >= 1"]),
    (["experiment=tiny", "+concepts.limt=2"], ["concepts.limt is not a setting (set to 2)", "concepts takes:", "limit"]),
    (["experiment=tiny", "+steering.factorz=[0.5]"], ["steering.factorz is not a setting (set to [0.5])", "factors"]),
    (["experiment=tiny", "judge=openai", "judge.model=''"], ["judge.model is ''; it must be a non-empty string"]),
    (["experiment=tiny", "judge=openai", "judge.concurrency=0"], ["judge.concurrency is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "judge=openai", "+judge.temprature=0.5"],
     ["judge.temprature is not a setting (set to 0.5)", "temperature"]),
    (["experiment=tiny", "judge=openai", "judge.base_url=localhost:8000/v1"],
     ["judge.base_url is 'localhost:8000/v1'; it must be an http:// or https:// URL"]),
    (["experiment=tiny", "generator=openai", "generator.base_url=127.0.0.1:8000/v1"],
     ["generator.base_url is '127.0.0.1:8000/v1'; it must be an http:// or https:// URL"]),
    (["experiment=tiny_full", "saes.relu.architecture=topkk"],
     ["saes.relu.architecture is 'topkk'; it must be one of 'standard', 'topk', 'batchtopk', 'jumprelu'"]),
    (["experiment=tiny", PRETRAINED, "saes.scope.path=/nonexistent/sae"],
     ["saes.scope.path is '/nonexistent/sae', which does not exist; it must be a folder saved by sae_lens"]),
    # top level
    (["experiment=tiny", "+model_thread=2"], ["model_thread is not a setting (set to 2); the top level of the config takes:",
                                               "model_threads"]),
    (["experiment=tiny", "model_threads=0"], ["model_threads is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "run_name='my run'"], ["run_name is 'my run'; it must be a name of letters, digits"]),
    # concepts
    (["experiment=tiny", "concepts.shard_size=0"], ["concepts.shard_size is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "concepts.limit=0"], ["concepts.limit is 0; it must be an integer >= 1 or null"]),
    (["experiment=tiny", "concepts.genre=guess"], ["concepts.genre is 'guess'; it must be one of 'given', 'ask'"]),
    # generators: dataset, local, openai
    (["experiment=tiny", "generator.format=parquet"], ["generator.format is 'parquet'; it must be one of 'demo', 'axbench'"]),
    (["experiment=tiny", "+generator.n_train_positive=4"], ["generator.n_train_positive is not a setting (set to 4)"]),
    (["experiment=tiny", "generator=local", "generator.n_train_positive=0"],
     ["generator.n_train_positive is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "generator=local", "generator.model.dtype=float8"],
     ["generator.model.dtype is 'float8'; it must be one of 'float32', 'bfloat16', 'float16'"]),
    (["experiment=tiny", "generator=openai", "generator.timeout_s=0"], ["generator.timeout_s is 0; it must be a number > 0"]),
    (["experiment=tiny", "generator=openai", "generator.price_per_1m.prompt=-1"],
     ["generator.price_per_1m.prompt is -1; it must be a number >= 0"]),
    # judges: offline, openai
    (["experiment=tiny", "judge.concept_thresholds=[0.3,0.2]"],
     ["judge.concept_thresholds is [0.3, 0.2]; it must be [low, high] with low <= high"]),
    (["experiment=tiny", "judge.fluency.max_repetition=[0.2,1.5]"],
     ["judge.fluency.max_repetition[1] is 1.5; it must be a number >= 0 and <= 1"]),
    (["experiment=tiny", "judge.embedding_model=/nonexistent/minilm"],
     ["judge.embedding_model is '/nonexistent/minilm', which is not a folder"]),
    (["experiment=tiny", "judge=openai", "judge.max_tokens=0"], ["judge.max_tokens is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "judge=openai", "judge.max_unparsed_share=1.5"],
     ["judge.max_unparsed_share is 1.5; it must be a number >= 0 and <= 1"]),
    (["experiment=tiny", "judge=openai", "judge.length_retries=-1"], ["judge.length_retries is -1; it must be an integer >= 0"]),
    # models
    (["experiment=tiny", "models.tiny_llama.dtype=float8"], ["models.tiny_llama.dtype is 'float8'; it must be one of"]),
    (["experiment=tiny", "+models.tiny_llama.revison=main"], ["models.tiny_llama.revison is not a setting (set to 'main')",
                                                              "revision"]),
    (["experiment=tiny", "models.tiny_llama.tiny.n_layers=0"], ["models.tiny_llama.tiny.n_layers is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "models.tiny_llama.completion_template=Question"],
     ["models.tiny_llama.completion_template is 'Question'; it must be a text containing {instruction}"]),
    # methods: one of each kind of setting
    (["experiment=tiny_full", "methods.bow.penalty=l3"], ["methods.bow.penalty is 'l3'; it must be one of 'l1', 'l2'"]),
    (["experiment=tiny_full", "methods.reft_r1.centre=maybe"], ["methods.reft_r1.centre is 'maybe'; it must be true or false"]),
    (["experiment=tiny_full", "methods.lora.dropout=1.0"], ["methods.lora.dropout is 1.0; it must be a number >= 0 and < 1"]),
    (["experiment=tiny_full", "methods.loreft.layer_fractions=[0.5,2]"],
     ["methods.loreft.layer_fractions[1] is 2; it must be a number >= 0 and <= 1"]),
    (["experiment=tiny_full", "methods.ig.max_concepts=0"], ["methods.ig.max_concepts is 0; it must be an integer >= 1 or null"]),
    (["experiment=tiny_full", "methods.sft.steps=0"], ["methods.sft.steps is 0; it must be an integer >= 1"]),
    (["experiment=tiny_full", "methods.reps.train_factors=[]"], ["methods.reps.train_factors is []; it must be a non-empty list"]),
    (["experiment=tiny_full", "methods.hypersteer.lr=0"], ["methods.hypersteer.lr is 0; it must be a number > 0"]),
    (["experiment=tiny_full", "methods.prompt_detection.batch_size=0"],
     ["methods.prompt_detection.batch_size is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "methods.prompt.template='about the concept'"],
     ["methods.prompt.template is 'about the concept'; it must be a text containing {concept}"]),
    (["experiment=tiny", "+methods.prompt.factors=[1.0]"], ["methods.prompt.factors is not a setting (set to [1.0])"]),
    (["experiment=tiny", "+methods.diffmean.intervention=clamp"],
     ["methods.diffmean.intervention is 'clamp'; it must be one of 'addition', 'clamping'"]),
    # SAEs: interpflow's trainer, sae_lens's trainer, pretrained
    (["experiment=tiny_full", "saes.topk.k=0"], ["saes.topk.k is 0; it must be an integer >= 1"]),
    (["experiment=tiny_full", "+saes.topk.l1_coefficient=1.0"], ["saes.topk.l1_coefficient is not a setting (set to 1.0)"]),
    (["experiment=tiny_full", "saes.relu.l1_coefficient=-1"], ["saes.relu.l1_coefficient is -1; it must be a number >= 0"]),
    (["experiment=saebench_tiny", "~saes.jumprelu.l0_coefficient"], ["saes.jumprelu", "needs `l0_coefficient`"]),
    (["experiment=tiny", PRETRAINED, "saes.scope.release=null"], ["saes.scope is pretrained but has neither `path`"]),
    # saebench
    (["experiment=tiny_full", "saebench.core.batch_size=0"], ["saebench.core.batch_size is 0; it must be an integer >= 1"]),
    (["experiment=tiny_full", "+saebench.absorption.n_word=100"], ["saebench.absorption.n_word is not a setting (set to 100)"]),
    (["experiment=tiny_full", "saebench.evals=[core,corr]"], ["saebench.evals[1] is 'corr'; it must be one of"]),
    (["experiment=tiny_full", "saebench.ravel.train_fraction=1.0"],
     ["saebench.ravel.train_fraction is 1.0; it must be a number > 0 and < 1"]),
    (["experiment=tiny_full", "saebench.scr.probe_selection=best_train"],
     ["saebench.scr.probe_selection is 'best_train'; it must be one of 'best_test', 'best_validation', 'last_epoch'"]),
    (["experiment=tiny_full", "saebench.tpp.probe_validation_fraction=0"],
     ["saebench.tpp.probe_validation_fraction is 0; it must be a number > 0 and < 1"]),
    (["experiment=tiny_full", "saebench.autointerp.llm.base_url=localhost"],
     ["saebench.autointerp.llm.base_url is 'localhost'; it must be an http:// or https:// URL"]),
    # circuits
    (["experiment=interpbench_tiny", "circuits.siit.lr=0"], ["circuits.siit.lr is 0; it must be a number > 0"]),
    (["experiment=interpbench_tiny", "+circuits.methods.eap.steps=3"], ["circuits.methods.eap.steps is not a setting (set to 3)"]),
    (["experiment=interpbench_tiny", "circuits.methods.eap_ig.interpolation=linear"],
     ["circuits.methods.eap_ig.interpolation is 'linear'; it must be one of 'embedding', 'mask'"]),
    (["experiment=interpbench_tiny", "circuits.data.n_examples=1"], ["circuits.data.n_examples is 1; it must be an integer >= 2"]),
    (["experiment=interpbench_tiny", "circuits.noise_floor=1"], ["circuits.noise_floor is 1; it must be a number >= 0 and < 1"]),
    (["experiment=interpbench_tiny", "circuits.sweep=levels"],
     ["circuits.sweep is 'levels'; it must be one of 'interpbench', 'score_levels'"]),
    (["experiment=interpbench_tiny", "circuits.sweeps.interpbench.thresholds=[0.1,-1]"],
     ["circuits.sweeps.interpbench.thresholds[1] is -1; it must be a number >= 0"]),
    (["experiment=interpbench_tiny", "circuits.sweeps.interpbench.thresholds=[]"],
     ["circuits.sweeps.interpbench.thresholds is []"]),
    (["experiment=interpbench_tiny", "circuits.sweeps.score_levels.sp_lambdas=[0.1,0.1]"],
     ["circuits.sweeps.score_levels.sp_lambdas is [0.1, 0.1]"]),
    (["experiment=interpbench_tiny", "circuits.sweeps.score_levels.max_levels=1"],
     ["circuits.sweeps.score_levels.max_levels is 1; it must be an integer >= 2"]),
    (["experiment=interpbench_tiny", "+circuits.methods.acdc.thresholds=[0.1]"],   # grids belong to circuits.sweeps
     ["circuits.methods.acdc.thresholds is not a setting (set to [0.1])"]),
    # pairs, activations, detection, steering
    (["experiment=tiny", "pairs.batch_size=0"], ["pairs.batch_size is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "activations.max_length=4"], ["activations.max_length is 4; it must be an integer >= 8"]),
    (["experiment=tiny", "detection.imbalance_ratio=0"], ["detection.imbalance_ratio is 0; it must be an integer >= 1"]),
    (["experiment=tiny", "steering.factors=[1,-0.5]"], ["steering.factors[1] is -0.5; it must be a number >= 0"]),
    (["experiment=tiny", "steering.temperature=-1"], ["steering.temperature is -1; it must be a number >= 0"]),
    (["experiment=tiny", "saebench.published=''"], ["saebench.published is ''; it must be a non-empty string or null"]),
]


def parse_time_checks(overrides: list[str], tmp_path: Path) -> None:
    """What workflow/rules/common.smk runs when the Snakefile is parsed."""
    cfg = compose(REPO / "config", [*overrides, f"results_dir={tmp_path / 'results'}"])
    validate(cfg, SCHEMA)
    preflight(cfg)


@pytest.mark.parametrize("overrides, fragments", BAD_SETTINGS, ids=[" ".join(o[1:]) for o, _ in BAD_SETTINGS])
def test_a_bad_setting_stops_before_any_job_with_a_named_message(overrides, fragments, tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_time_checks(overrides, tmp_path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert not (tmp_path / "results").exists()


def test_every_bad_value_is_named_at_once(tmp_path):
    """Schema problems are listed together, so one run shows every mistake of an edit."""
    with pytest.raises(ConfigError) as info:
        parse_time_checks(["experiment=tiny", "steering.temperature=-1", "+concepts.limt=2", "pairs.batch_size=0"], tmp_path)
    assert len(str(info.value).splitlines()) == 4  # a heading and three problems


# --- what ships must pass ------------------------------------------------------------------

EXPERIMENTS = sorted(p.stem for p in (REPO / "config" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_shipped_experiment_composes_and_validates(experiment, tmp_path):
    """Preflight of the experiments that need a user's data or endpoint is in test_config.py."""
    cfg = compose(REPO / "config", [f"experiment={experiment}", f"data_dir={tmp_path}"])
    validate(cfg, SCHEMA)


@pytest.mark.parametrize("group, preset", [(p.parent.name, p.stem) for group in ("model", "sae", "generator", "judge")
                                           for p in sorted((REPO / "config" / group).glob("*.yaml"))])
def test_every_preset_validates(group, preset, tmp_path):
    selected = {"model": f"+model@models.extra={preset}", "sae": f"+sae@saes.extra={preset}",
                "generator": f"generator={preset}", "judge": f"judge={preset}"}[group]
    validate(compose(REPO / "config", ["experiment=tiny", selected, f"data_dir={tmp_path}"]), SCHEMA)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_preset_fits_its_declared_settings(method):
    """config/method/<name>.yaml gives every setting its default; the class declares the same keys (the
    optional ones every steering method has, `factors` and a vector method's `intervention`, aside)."""
    preset = yaml.safe_load((REPO / "config" / "method" / f"{method}.yaml").read_text())
    schema = METHODS[method].settings_schema()
    assert problems(preset, schema) == []
    optional = {"factors", "intervention"}
    assert set(schema["properties"]) - optional == set(preset) - optional
