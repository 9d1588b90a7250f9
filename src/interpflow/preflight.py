"""Checks that run when the Snakefile is parsed, before any job: a bad input stops with one clear
message, not a traceback twenty minutes into a run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from interpflow.data.concepts import build_concepts
from interpflow.data.instructions import check_steering_apart, load_instructions
from interpflow.data.sources import build_source
from interpflow.errors import ConfigError

# Decoder blocks of the models that ship as pinned packages (checked again when a model is prepared).
PACKAGED_LAYER_COUNTS = {"smollm2_gguf": 30, "gemma3_gguf": 18}


def known_layer_count(model_cfg: dict) -> int | None:
    if model_cfg["source"] == "tiny":
        return model_cfg["tiny"]["n_layers"]
    if model_cfg["source"] == "hub":
        return hub_layer_count(model_cfg["id"], model_cfg.get("revision"))
    return PACKAGED_LAYER_COUNTS.get(model_cfg["source"])


def hub_layer_count(model_id: str, revision: str | None = None) -> int | None:
    """Decoder blocks of a hub model (at `revision`) or local folder, from its config.json (a few KB, cached
    by the hub client); None when it cannot be read here (offline and not cached): prepare_model checks again."""
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_id, revision=revision)
    except Exception:  # noqa: BLE001 - no network or no such model yet: the prepare job says which
        return None
    config = getattr(config, "text_config", None) or config
    return getattr(config, "num_hidden_layers", None)


def check_layers(model_cfg: dict, n_layers: int | None) -> None:
    if n_layers is None:
        return
    bad = [layer for layer in model_cfg["layers"] if not 0 <= layer < n_layers]
    if bad:
        raise ConfigError(
            f"models.{model_cfg['name']}.layers has {bad} outside the model: it has {n_layers} decoder blocks "
            f"(valid layers: 0..{n_layers - 1})"
        )


def check_positives(frame: pd.DataFrame, concepts: pd.DataFrame, what: str) -> None:
    have = set(frame.loc[frame["label"] == 1, "concept_id"])
    lacking = concepts.loc[~concepts["concept_id"].isin(have), "concept"].tolist()
    if lacking:
        raise ConfigError(f"the data set has no positive {what} examples for concept(s) {lacking}")


def generator_cache_dir(cfg: dict) -> Path:
    """The API generator's answers, shared by every run under results_dir (like the judge's)."""
    return Path(cfg["results_dir"]) / "cache" / "generator"


def data_source(cfg: dict):
    """The configured data source, checked ready (missing data files and API keys fail here)."""
    source = build_source(cfg["generator"], Path(cfg["results_dir"]) / cfg["run_name"] / "generator",
                          generator_cache_dir(cfg))
    source.check_ready()
    return source


def check_methods(cfg: dict) -> None:
    """A method that reads an SAE names one of `saes` (its settings, intervention included, are checked
    when the config is composed: config.check_method_settings)."""
    from interpflow.methods import method_class

    for key, method_cfg in cfg["methods"].items():
        cls = method_class(method_cfg["name"])
        if cls.uses_sae and method_cfg.get("sae") not in (cfg.get("saes") or {}):
            known = sorted(cfg.get("saes") or {})
            raise ConfigError(f"method {key} reads the sparse autoencoder {method_cfg.get('sae')!r}, which is not in "
                              f"`saes` ({known or 'empty'}); add one, e.g. +sae@saes.topk=trained_topk")


def check_genre_source(cfg: dict, source) -> None:
    """concepts.genre = ask needs a generator model to ask."""
    if cfg["concepts"].get("genre", "given") == "ask" and not hasattr(source, "assign_genres"):
        raise ConfigError(f"concepts.genre = ask needs a generator model (generator local or openai), "
                          f"not {cfg['generator']['name']!r}; set concepts.genre = given")


def check_negatives(train: pd.DataFrame, concepts: pd.DataFrame) -> None:
    """Each concept needs negatives: its own, or shared ones (concept_id -1) of its genre."""
    negatives = train[train["label"] == 0]
    shared_genres = set(negatives.loc[negatives["concept_id"] == -1, "genre"])
    own = set(negatives["concept_id"])
    lacking = concepts[~concepts["concept_id"].isin(own) & ~concepts["genre"].isin(shared_genres)]
    if len(lacking):
        unused = sorted(shared_genres - set(concepts["genre"]))
        raise ConfigError(f"no negative training examples for concept(s) {lacking['concept'].tolist()} (genres "
                          f"{sorted(set(lacking['genre']))}); the data set's shared negatives have genres "
                          f"{sorted(shared_genres)}{f', of which {unused} match no concept' if unused else ''}")


def check_instruction_count(cfg: dict, steering: list[str]) -> None:
    wanted = cfg["steering"]["instructions_per_concept"]
    if len(steering) < wanted:
        raise ConfigError(f"steering.instructions_per_concept is {wanted} but steering.instructions has only "
                          f"{len(steering)}; lower it or add instructions")


def check_judge(cfg: dict) -> None:
    """What the judge job would find wrong after every steering job, found now: an API judge's key, the
    offline judge's embedding folder and threshold order (the schema checks keys and ranges)."""
    judge = cfg["judge"]
    if judge["name"] == "openai":
        from interpflow.providers.openai_chat import require_api_key

        require_api_key(judge["api_key_env"], "judge")
        return
    pairs = {f"judge.{key}": judge.get(key) for key in ("concept_thresholds", "instruction_thresholds")}
    pairs.update({f"judge.fluency.{key}": value for key, value in (judge.get("fluency") or {}).items()})
    for key, pair in pairs.items():
        if pair is not None and pair[0] > pair[1]:
            raise ConfigError(f"{key} is {pair}; it must be [low, high] with low <= high")
    folder = judge.get("embedding_model")
    if folder is not None and not Path(folder).is_dir():
        raise ConfigError(f"judge.embedding_model is {folder!r}, which is not a folder; give a local "
                          "sentence-transformers model folder, or null for the packaged all-MiniLM-L6-v2")


def check_saes(cfg: dict) -> None:
    """What an SAE job would find wrong after the activation caching, found now: the sparsity setting of
    an sae_lens architecture, and a pretrained SAE's local folder (hub releases are fetched by the job)."""
    from interpflow.sae.lens_training import check_config

    for key, sae_cfg in (cfg.get("saes") or {}).items():
        if sae_cfg["source"] == "train" and sae_cfg.get("trainer") == "sae_lens":
            try:
                check_config(sae_cfg)
            except ConfigError as err:
                raise ConfigError(f"saes.{key}: {err}") from None
        if sae_cfg["source"] != "pretrained":
            continue
        path = sae_cfg.get("path")
        if path is None and not (sae_cfg.get("release") and sae_cfg.get("sae_id")):
            raise ConfigError(f"saes.{key} is pretrained but has neither `path` (a folder saved by sae_lens) nor "
                              "`release` and `sae_id` (an sae_lens release on the hub); set one")
        if path is not None and not (Path(path) / "cfg.json").is_file():
            what = "has no cfg.json" if Path(path).is_dir() else "does not exist"
            raise ConfigError(f"saes.{key}.path is {path!r}, which {what}; it must be a folder saved by sae_lens "
                              "(SAE.save_model: cfg.json + sae_weights.safetensors), or null to load `release`/`sae_id`")


def check_saebench(cfg: dict, concepts: pd.DataFrame) -> None:
    """SAEBench evaluations that need more of the run than it has."""
    evals = (cfg.get("saebench") or {}).get("evals") or []
    if evals and not cfg.get("saes"):
        raise ConfigError(f"saebench.evals lists {evals} but `saes` is empty; add an SAE, e.g. +sae@saes.topk=trained_topk")
    if "autointerp" in evals:  # it asks an LLM: the key must be there before any job starts
        from interpflow.providers.openai_chat import require_api_key

        require_api_key(cfg["saebench"]["autointerp"]["llm"]["api_key_env"], "saebench.autointerp.llm")
    if "tpp" in evals and len(concepts) < 3:
        raise ConfigError(f"saebench.evals has tpp, which needs three concepts or more (this run has {len(concepts)}; with "
                          "two, each concept's probe mirrors the other's and TPP is 0 by construction); add concepts "
                          "or drop tpp")
    if "unlearning" in evals:
        check_unlearning_data(cfg["saebench"]["unlearning"])
    from interpflow.saebench.published import check_published

    check_published((cfg.get("saebench") or {}).get("published"))


def check_unlearning_data(cfg: dict) -> None:
    """The user's question and corpus files exist and have the columns unlearning reads (a few ms to read)."""
    from interpflow.saebench.unlearning_data import corpora, questions

    keys = ("forget_questions", "retain_questions", "forget_corpus", "retain_corpus")
    if any(str(cfg.get(k) or "").startswith("hf://") for k in keys):
        return  # read by the stage itself: parsing the Snakefile must not need the network
    for key in keys:
        if cfg.get(key) and not Path(cfg[key]).is_file():
            raise ConfigError(f"saebench.unlearning.{key} is {cfg[key]!r}, which is not a file; give a path to a file or "
                              "null for the shipped data")
    frame, texts = questions(cfg), corpora(cfg)
    for topic in ("forget", "retain"):
        if not (frame["topic"] == topic).any() or not texts[topic]:
            raise ConfigError(f"saebench.unlearning: the {topic} questions or corpus are empty")


def check_sae_files(cfg: dict) -> None:
    """The files an SAE or an SAE method reads from the user (a pretrained SAE's folder, a labels table)
    are whole and of the right kind; headers and small tables only, read in milliseconds."""
    for key, sae_cfg in (cfg.get("saes") or {}).items():
        if sae_cfg.get("source") == "pretrained" and sae_cfg.get("path"):
            from interpflow.sae.pretrained import check_local

            check_local(str(sae_cfg["path"]), f"saes.{key}.path")
    labels = {}  # file -> the method key as written (before the config made one method per SAE: `sae-topk`)
    for key, method_cfg in cfg["methods"].items():
        if method_cfg.get("labels"):
            labels.setdefault(method_cfg["labels"], key.removesuffix(f"-{method_cfg.get('sae')}"))
    for path, key in labels.items():
        from interpflow.methods.sae import read_labels

        read_labels(path, f"methods.{key}.labels")


def check_something_runs(cfg: dict) -> None:
    concept = bool(cfg["models"]) and bool(cfg["methods"])
    saebench = bool(cfg["models"]) and bool((cfg.get("saebench") or {}).get("evals"))
    circuits = bool((cfg.get("circuits") or {}).get("tasks"))
    if not (concept or saebench or circuits):
        raise ConfigError("this config runs nothing: the concept benchmark needs `models` and `methods`, the SAE "
                          "benchmark `models` and `saebench.evals`, the circuit benchmark `circuits.tasks`")


def check_circuit_tasks(cfg: dict) -> None:
    tasks = (cfg.get("circuits") or {}).get("tasks") or []
    if tasks:
        from interpflow.circuits.tasks import TASKS

        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ConfigError(f"circuits.tasks has unknown tasks {unknown}; known: {', '.join(sorted(TASKS))}")


def preflight(cfg: dict) -> pd.DataFrame:
    """Validate everything that can be checked cheaply; return the concept table (with shards)."""
    check_something_runs(cfg)
    check_circuit_tasks(cfg)
    check_methods(cfg)
    check_judge(cfg)
    check_saes(cfg)
    check_sae_files(cfg)
    for model_cfg in cfg["models"].values():
        check_layers(model_cfg, known_layer_count(model_cfg))
    source = data_source(cfg)
    check_genre_source(cfg, source)
    concepts = build_concepts(cfg, source.concepts())
    check_saebench(cfg, concepts)
    steering = load_instructions(cfg["steering"]["instructions"], "steering.instructions")
    check_instruction_count(cfg, steering)
    if cfg["generator"]["name"] == "dataset":  # ready-made data is cheap to read now
        train, evaluation = source.train_data(concepts), source.latent_eval_data(concepts)
        check_positives(train, concepts, "training")
        check_negatives(train, concepts)
        check_positives(evaluation, concepts, "evaluation")
        check_steering_apart(steering, [*train["input"], *evaluation["input"]], "the data set's training or evaluation inputs")
    else:
        check_steering_apart(steering, load_instructions(str(cfg["generator"].get("instructions", "demo"))), "generator.instructions")
    return concepts
