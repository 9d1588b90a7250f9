# Config composition and validation, the experiment's concepts and shards, and input helpers.

import functools
import json
import shlex
import sys
from types import SimpleNamespace
from pathlib import Path

from interpflow.config import check_snakemake_config, compose, validate
from interpflow.errors import config_errors_stop_the_run
from interpflow.fingerprint import code_fingerprint
from interpflow.inputs import package_data, user_inputs
from interpflow.judges import judge_module
from interpflow.methods import method_class
from interpflow.preflight import preflight
from interpflow.api_budget import check_budget, plan_api_requests, summary
from interpflow.saebench.published import check_published_files

# `--config overrides=[...]` holds Hydra overrides; the composed dict then *is* the config. Any other
# key (`--config key=value`, `--configfile`) would be silently overwritten, so it stops the run.
with config_errors_stop_the_run():  # a bad setting or input file: its message, no stack
    check_snakemake_config(config)
    _overrides = config.get("overrides", [])
    _overrides = [_overrides] if isinstance(_overrides, str) else list(_overrides)
    _composed = compose(Path(workflow.basedir) / "config", _overrides)
    validate(_composed, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    config.clear()
    config.update(_composed)

    RESULTS = f"{config['results_dir']}/{config['run_name']}"
    MODELS_DIR = config["models_dir"]
    # A local generator model is prepared by its own rule (models.smk) into a declared folder, before any
    # data job loads it: parallel data jobs never prepare it side by side.
    if config["generator"]["name"] == "local":
        config["generator"]["prepared_dir"] = config["generator"].get("prepared_dir") or f"{RESULTS}/generator/generator_model"
        GENERATOR_MODEL = [f"{config['generator']['prepared_dir']}/interpflow_model.json"]
    else:
        GENERATOR_MODEL = []
    CONCEPTS = preflight(config)
    # The most API requests the run may send, and their estimated cost: printed once, by the Snakemake
    # process the user started (each job on a cluster parses this file again); over api_budget, stop.
    if workflow.is_main_process:
        API_PLANS = plan_api_requests(config, CONCEPTS)
        if API_PLANS:
            print(summary(API_PLANS), file=sys.stderr)
        check_budget(config, API_PLANS)
        check_published_files(config["saebench"].get("published"))
SHARDS = sorted(CONCEPTS["shard"].unique())
MODELS = list(config["models"])
METHODS = list(config["methods"])
MODEL_THREADS = config["model_threads"]


def model_params(model):
    """A model's config minus its layer list: adding a layer must not re-run the other layers' jobs."""
    return as_json({k: v for k, v in config["models"][model].items() if k != "layers"})


def judge_settings():
    """The judge's config minus max_unparsed_share, which only the steering evaluation reads: changing
    it re-runs the evaluations, not the judging."""
    return {k: v for k, v in config["judge"].items() if k != "max_unparsed_share"}


def unparsed_cap_arg():
    """--max-unparsed-share for evaluate-steering where the judge has the setting (the LLM judge)."""
    share = config["judge"].get("max_unparsed_share")
    return "" if share is None else f"--max-unparsed-share {share}"


def conversion_params(model):
    """What determines a converted model folder (prompt formats and layers do not): a hub model's
    revision too, so that a new revision prepares the model again and re-runs what reads it."""
    keys = ("name", "source", "id", "revision", "tiny")
    return as_json({k: v for k, v in config["models"][model].items() if k in keys})


def method_info(name):
    return method_class(config["methods"][name]["name"])


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def json_param(obj):
    """A JSON params value, wrapped in a function so Snakemake does not read braces in it
    (e.g. a template's "{instruction}") as wildcards."""
    text = as_json(obj)
    return lambda wildcards: text


# Package code is invisible to Snakemake: each rule's params carry code_fingerprint(<its stage module>).
# Hashed once per module: per-job params call these for every job of the DAG.
stage_code = functools.cache(code_fingerprint)


def method_code(method):
    return stage_code(method_info(method).__module__)


def files_read(stage, *wildcard_names):
    """An input function: the user's files and folders that `stage` reads (interpflow/inputs.py), so that
    editing one re-runs the stage. `wildcard_names` are the wildcards the stage's reader takes."""
    return lambda w: user_inputs(config, stage, **{name: w[name] for name in wildcard_names})


def data_code(module, stage):
    """A data stage's fingerprint: its code and the package data it reads under this config."""
    return code_fingerprint(module) + package_data(config, stage)


def model_layers():
    return [(m, layer) for m in MODELS for layer in config["models"][m]["layers"]]


def runs(capability):
    """(model, layer, method) triples whose method can `capability` ('detects' or 'steers')."""
    return [(m, l, meth) for m, l in model_layers() for meth in METHODS if getattr(method_info(meth), capability)]


def _acts(w, split):
    base = f"{RESULTS}/acts/{w.model}/L{w.layer}/{split}/{w.shard}"
    return {"acts": f"{base}.safetensors", "index": f"{base}.index.parquet"}


def _method_reads(w, split):
    """What a method's job reads besides the data file, from its `needs` and flags."""
    info = method_info(w.method)
    needs = info.needs if split == "train" else info.detection_needs()
    inputs = {}
    if needs == "activations":
        inputs.update(_acts(w, split))
    if needs == "model":
        inputs["model"] = rules.prepare_model.output[0].format(model=w.model)
    if split == "train" and info.uses_pairs:
        inputs["pairs"] = f"{RESULTS}/data/pairs/{w.model}/{w.shard}.parquet"
    if split == "train" and info.uses_sae:
        inputs["sae"] = sae_path(w.model, w.layer, config["methods"][w.method]["sae"])
    return inputs


def train_inputs(w):
    return {"concepts": rules.concepts.output[0], "data": f"{RESULTS}/data/train/{w.shard}.parquet",
            **_method_reads(w, "train"), "user_files": user_inputs(config, "train", method=w.method)}


def detect_inputs(w):
    """The shard's evaluation data and the run's imbalance pool, with what the method reads of each."""
    info = method_info(w.method)
    inputs = {"concepts": rules.concepts.output[0], "data": f"{RESULTS}/data/latent_eval/{w.shard}.parquet",
              **_method_reads(w, "latent_eval")}
    if info.trains():
        inputs["weights"] = f"{RESULTS}/methods/{w.model}/L{w.layer}/{w.method}/{w.shard}.safetensors"
    if info.scores_pool:
        pool = SimpleNamespace(model=w.model, layer=w.layer, method=w.method, shard="pool")
        inputs["pool"] = f"{RESULTS}/data/latent_eval/pool.parquet"
        inputs.update({f"pool_{k}": v for k, v in _method_reads(pool, "latent_eval").items() if k in ("acts", "index")})
    return inputs


def method_input_args(w, input):
    """Command-line options for the optional inputs of a train/detect job, and the model it runs."""
    names = ("acts", "index", "pairs", "sae", "pool", "pool_acts", "pool_index")
    args = [f"--artifact {shlex.quote(input.weights)}"] if "weights" in input.keys() else []
    args += [f"--{name.replace('_', '-')} {shlex.quote(input[name])}" for name in names if name in input.keys()]
    if "model" in input.keys():
        args.append(f"--model-dir {shlex.quote(f'{MODELS_DIR}/{w.model}')}")
    args.append(f"--model-cfg {shlex.quote(model_params(w.model))} --layer {w.layer}")
    return " ".join(args)


def model_gpu(wildcards, input):
    """GPUs for a job that runs a language model (one of its inputs is the prepared model), else 0.
    Declared on the rules, not in a profile: a profile's `set-resources` then changes a rule's memory
    or time without dropping its GPU. `model_job_gpus: 0` for a CPU-only cluster."""
    return config["model_job_gpus"] * int("model" in input.keys())


def sae_gpu(wildcards):
    """sae_lens's trainer uses the job's GPU; interpflow's TopK trainer and a pretrained SAE do not."""
    cfg = config["saes"][wildcards.sae]
    return config["model_job_gpus"] * int(cfg.get("source") == "train" and cfg.get("trainer") == "sae_lens")


def api_jobs(section):
    """1 for a job that calls an OpenAI-compatible API (config section `judge` or `generator`), else 0:
    profiles cap these with `resources: llm_api=N`."""
    return int(config[section]["name"] == "openai")


def method_threads(w):
    """A job with the model in the loop gets a model's threads; the rest are light."""
    info = method_info(w.method)
    return MODEL_THREADS if "model" in (info.needs, info.detection_needs()) else 1


SAES = list(config.get("saes") or {})


def sae_path(model, layer, sae):
    return f"{RESULTS}/sae/{model}/L{layer}/{sae}.safetensors"


def sae_training_acts(model, layer, sae):
    """A trained SAE learns from the first `train_shards` shards' training activations; a pretrained one
    reads the first shard's, to check its width and layer and to summarise it."""
    sae_cfg = config["saes"][sae]
    first = (sae_cfg.get("train_shards") or len(SHARDS)) if sae_cfg.get("source") == "train" else 1
    return [f"{RESULTS}/acts/{model}/L{layer}/train/{s}.safetensors" for s in SHARDS[:first]]


def steer_inputs(w):
    info = method_info(w.method)
    inputs = {
        "model": rules.prepare_model.output[0].format(model=w.model),
        "concepts": rules.concepts.output[0],
        "prompts": f"{RESULTS}/data/steer_prompts/{w.shard}.parquet",
    }
    if info.trains():
        inputs["weights"] = f"{RESULTS}/methods/{w.model}/L{w.layer}/{w.method}/{w.shard}.safetensors"
    if info.uses_factor and info.detects:  # strength = factor x a_c needs the concept's eval scores
        inputs["latent"] = f"{RESULTS}/latent/{w.model}/L{w.layer}/{w.method}/{w.shard}.parquet"
    return inputs


def steer_artifact_args(w, input):
    args = [f"--artifact {shlex.quote(input.weights)}"] if "weights" in input.keys() else []
    if "latent" in input.keys():
        args.append(f"--latent {shlex.quote(input.latent)}")
    return " ".join(args)


def run_paths(template, capability):
    """`template` filled for every (model, layer, method) whose method can `capability`."""
    return [template.format(model=m, layer=l, method=meth) for m, l, meth in runs(capability)]


wildcard_constraints:
    model="|".join(MODELS),
    method="|".join(METHODS),
    sae="|".join(SAES) or "no_sae",
    shard=r"s\d\d\d\d+",  # shard names (see data/concepts.py); a 250-way alternation slows planning at 16K concepts
    layer=r"\d+",
    split="train|latent_eval",


SAEBENCH_EVALS = list(config["saebench"]["evals"])
SAEBENCH_RESULTS = [
    f"{RESULTS}/saebench/{m}/L{l}/{sae}/{evaluation}.json"
    for m, l in model_layers() for sae in SAES for evaluation in SAEBENCH_EVALS
]
SAEBENCH_OUTPUTS = [f"{RESULTS}/saebench/leaderboard.md", f"{RESULTS}/saebench/eval_results"] if SAEBENCH_RESULTS else []

# The concept benchmark's outputs, when the run has models and methods (experiment=interpbench has neither).
LEADERBOARD = [
    f"{RESULTS}/leaderboard.md",
    f"{RESULTS}/leaderboard.csv",
    f"{RESULTS}/plots/detection_auc.png",
    f"{RESULTS}/plots/steering_vs_factor.png",
] if MODELS and METHODS else []
