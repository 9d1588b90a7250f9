"""The files a stage reads besides its upstream artifacts, so that editing one re-runs exactly the
stages that read it.

- The user's files and folders named in the config become rule inputs (`user_inputs`): Snakemake
  re-runs a job whose input is newer than its output. A folder counts as every file under it.
  Remote data (`hf://...`, `https://...`) cannot be an input; its name is in the rule's params.
- The data shipped in the package (the `demo` sets) enter the rule's code fingerprint as a hash of
  their content (`package_data`): installing the package again, which gives every file a new
  modification time, must not re-run anything.

`STAGE_READS` says, per stage, which config keys name what it reads; the readers themselves
(data/sources/dataset.py, data/instructions.py, ...) own the file names.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from interpflow.data.instructions import SHIPPED as SHIPPED_INSTRUCTIONS
from interpflow.data.sources.dataset import AXBENCH_FILES, DEMO_DIR, axbench_data_files
from interpflow.saebench.published import published_files

PACKAGE_ROOT = Path(__file__).resolve().parent
GENERATED_SOURCES = ("local", "openai")  # sources that write examples from `generator.instructions`


def is_remote(spec: object) -> bool:
    return "://" in str(spec)


def _files(spec: str | Path | None) -> list[Path]:
    """A local file, or every file under a local folder (sorted); nothing for None or remote data."""
    if not spec or is_remote(spec):
        return []
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def _concept_list(cfg: dict) -> list[Path]:
    spec = cfg["concepts"]
    return _files(spec.get("path")) if spec["source"] in ("file", "neuronpedia") else []


def _data_set(cfg: dict, part: str) -> list[Path]:
    """What the `dataset` source reads for `part` (concepts, train or latent_eval): the shipped demo
    set, or that part's files of an AxBench-format folder (one per 500 concept ids)."""
    generator = cfg["generator"]
    if generator["name"] != "dataset":
        return []
    if generator.get("format") == "axbench":
        folder = Path(generator["path"])
        if part == "concepts":
            return [folder / AXBENCH_FILES[2]]
        index = {"train": 0, "latent_eval": 1}[part]
        return axbench_data_files(folder, index) or [folder / AXBENCH_FILES[index]]  # none yet: the required first
    return sorted((DEMO_DIR / "concepts").glob("*.json"))


def _instructions(cfg: dict, key: str) -> list[Path]:
    """An instruction list (`steering.instructions` or `generator.instructions`): the shipped list for
    `demo`, else the user's file."""
    section, name = key.split(".")
    spec = str(cfg[section].get(name, "demo"))
    return [PACKAGE_ROOT / SHIPPED_INSTRUCTIONS[key]] if spec == "demo" else _files(spec)


def _generator_instructions(cfg: dict) -> list[Path]:
    return _instructions(cfg, "generator.instructions") if cfg["generator"]["name"] in GENERATED_SOURCES else []


def _example_data(part: str) -> Callable[[dict], list[Path]]:
    def reads(cfg: dict) -> list[Path]:
        return [*_data_set(cfg, part), *_generator_instructions(cfg), *_instructions(cfg, "steering.instructions")]

    return reads


def _model_folder(model_cfg: dict) -> list[Path]:
    """A hub model given as a local folder (a hub id is downloaded, keyed by its `revision`)."""
    model_id = model_cfg.get("id")
    is_folder = model_cfg.get("source") == "hub" and model_id and Path(model_id).is_dir()
    return _files(model_id) if is_folder else []


def _unlearning(kind: str) -> Callable[[dict], list[Path]]:
    def reads(cfg: dict) -> list[Path]:
        unlearning = (cfg.get("saebench") or {}).get("unlearning") or {}
        return [f for topic in ("forget", "retain") for f in _files(unlearning.get(f"{topic}_{kind}"))]

    return reads


# stage (rule) -> reader(config, **wildcards) -> the local files it reads that the config names
STAGE_READS: dict[str, Callable[..., list[Path]]] = {
    "concepts": lambda cfg: [*_concept_list(cfg), *_data_set(cfg, "concepts")],
    "train_data": _example_data("train"),
    "eval_data": _example_data("latent_eval"),
    "imbalance_pool": lambda cfg: _data_set(cfg, "latent_eval"),  # a data set's whole evaluation file
    "prepare_model": lambda cfg, model: _model_folder(cfg["models"][model]),
    "prepare_generator": lambda cfg: _model_folder(cfg["generator"].get("model") or {}),
    "train": lambda cfg, method: _files(cfg["methods"][method].get("labels")),  # the SAE methods' latent labels
    "sae": lambda cfg, sae: _files(cfg["saes"][sae].get("path")),  # a pretrained SAE saved by sae_lens
    "judge": lambda cfg: _files(cfg["judge"].get("embedding_model")),
    "unlearning_questions": _unlearning("questions"),
    "cache_unlearning_corpus": _unlearning("corpus"),
    "saebench_leaderboard": lambda cfg: published_files((cfg.get("saebench") or {}).get("published")),
}


def _is_shipped(path: Path) -> bool:
    return path.resolve().is_relative_to(PACKAGE_ROOT)


def user_inputs(cfg: dict, stage: str, **wildcards: str) -> list[str]:
    """The user's files `stage` reads: rule inputs."""
    return [str(p) for p in STAGE_READS[stage](cfg, **wildcards) if not _is_shipped(p)]


def package_data(cfg: dict, stage: str, **wildcards: str) -> str:
    """A hash of the shipped data files `stage` reads ("" when it reads none), for its code fingerprint."""
    shipped = sorted(p.resolve() for p in STAGE_READS[stage](cfg, **wildcards) if _is_shipped(p))
    if not shipped:
        return ""
    digest = hashlib.sha256()
    for path in shipped:
        digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
