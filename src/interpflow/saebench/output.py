"""SAEBench's output JSON: one file per (SAE, evaluation), in the shape SAEBench's own evals write.

    eval_type_id          "core", "sparse_probing", ...
    eval_config           the settings the numbers came from
    eval_id               a digest of (evaluation, config, SAE file): equal inputs, equal id
    datetime_epoch_millis when it was written
    eval_result_metrics   {category: {metric: value}}
    eval_result_details   per-feature or per-class rows
    eval_result_unstructured  anything else
    sae_lens_id / sae_lens_release_id / sae_lens_version / sae_cfg_dict   the SAE's identity and config
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import metadata as package_metadata
from pathlib import Path

from interpflow.artifacts import read_tensor_metadata, write_json


def sae_config(sae_path: str | Path) -> dict:
    """The SAE's own config as stored beside its tensors (training config or pretrained release/id)."""
    stored = read_tensor_metadata(sae_path)
    config = {}
    for key, value in stored.items():
        try:
            config[key] = json.loads(value)
        except (TypeError, ValueError):
            config[key] = value
    return config


def eval_id(eval_type_id: str, eval_config: dict, sae_path: str | Path) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([eval_type_id, eval_config], sort_keys=True).encode())
    digest.update(Path(sae_path).read_bytes())
    return digest.hexdigest()[:16]


def write_eval_output(path: str | Path, eval_type_id: str, eval_config: dict, metrics: dict, details: list[dict],
                      sae_path: str | Path, sae_name: str, unstructured: dict | None = None) -> dict:
    config = sae_config(sae_path)
    output = {
        "eval_type_id": eval_type_id,
        "eval_config": eval_config,
        "eval_id": eval_id(eval_type_id, eval_config, sae_path),
        "datetime_epoch_millis": int(time.time() * 1000),
        "eval_result_metrics": metrics,
        "eval_result_details": details,
        "eval_result_unstructured": unstructured or {},
        "sae_lens_id": config.get("sae_id") or sae_name,
        "sae_lens_release_id": config.get("release") or "interpflow",
        "sae_lens_version": _version("sae-lens"),
        "sae_cfg_dict": config,
    }
    write_json(output, path)
    return output


def _version(package: str) -> str:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return ""
