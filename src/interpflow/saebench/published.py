"""SAEBench's published results (`saebench.published`): a folder of `*_eval_results.json` as SAEBench
writes and releases them,

    <folder>/<eval_type>/<release>_<sae_id>_eval_results.json

read into leaderboard rows beside the run's own SAEs. A published SAE is named `<release>/<sae_id>`
(its `sae_lens_release_id` / `sae_lens_id`), its model and layer come from its `sae_cfg_dict`
(`model_name`; `hook_layer`, or the block of `hook_name` as sae_lens 6 writes it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from interpflow.errors import ConfigError

KEY = "saebench.published"
PATTERN = "*_eval_results.json"
HOOK_BLOCK = re.compile(r"blocks\.(\d+)\.")
# the folders SAEBench writes whose name is not the eval_type_id (for files without one)
FOLDER_EVAL_TYPE = {"absorption": "absorption_first_letter"}


def published_files(folder: str | Path | None) -> list[Path]:
    """Every `*_eval_results.json` under `folder` (sorted); none for null."""
    return sorted(Path(folder).rglob(PATTERN)) if folder else []


def read_published(path: str | Path) -> dict:
    """One published result, with the fields the leaderboard reads checked; a ConfigError names the file."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{KEY}: {path} is not readable JSON ({err}); fix or remove the file") from err
    if not isinstance(result, dict) or not isinstance(result.get("eval_result_metrics"), dict):
        raise ConfigError(f"{KEY}: {path} has no `eval_result_metrics` object; it is not a SAEBench result "
                          "(<eval_type>/<release>_<sae_id>_eval_results.json as SAEBench writes it); remove it")
    result.setdefault("eval_type_id", FOLDER_EVAL_TYPE.get(Path(path).parent.name, Path(path).parent.name))
    sae_cfg = result.get("sae_cfg_dict") or {}
    if not sae_cfg.get("model_name") or published_layer(sae_cfg) is None:
        raise ConfigError(f"{KEY}: {path} has no model or layer in `sae_cfg_dict` (model_name and hook_layer or "
                          "hook_name 'blocks.<layer>....'); remove it or add them")
    return result


def published_layer(sae_cfg: dict) -> int | None:
    if sae_cfg.get("hook_layer") is not None:
        return int(sae_cfg["hook_layer"])
    block = HOOK_BLOCK.search(str(sae_cfg.get("hook_name") or ""))
    return int(block[1]) if block else None


def published_key(result: dict) -> tuple[str, int, str]:
    """(model, layer, sae) of a published result: the leaderboard's row keys."""
    sae_cfg = result["sae_cfg_dict"]
    name = f"{result.get('sae_lens_release_id')}/{result.get('sae_lens_id')}"
    return str(sae_cfg["model_name"]), published_layer(sae_cfg), name


def check_published(folder: str | None) -> None:
    """At parse time: the folder exists and holds SAEBench results (a listing; every job's parse runs it)."""
    if not folder:
        return
    if not Path(folder).is_dir():
        raise ConfigError(f"{KEY} is {folder!r}, which is not a folder; give a folder of SAEBench's "
                          f"<eval_type>/{PATTERN} files, or null")
    files = published_files(folder)
    if not files:
        raise ConfigError(f"{KEY} is {folder!r}, which holds no {PATTERN} file; give the folder SAEBench's results "
                          "were unpacked to (<eval_type>/<release>_<sae_id>_eval_results.json), or null")


def check_published_files(folder: str | None) -> None:
    """Once per run, before any job (the Snakemake process the user started, not every job's parse: a
    full SAEBench release is thousands of files): each published file is readable SAEBench output."""
    for path in published_files(folder):
        read_published(path)
