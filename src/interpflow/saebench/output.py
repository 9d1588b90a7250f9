"""SAEBench's output JSON: one file per (SAE, evaluation), in the shape SAEBench's own evals write.

    eval_type_id          "core", "sparse_probing", ...
    eval_config           the settings the numbers came from
    eval_id               a digest of (evaluation, config, SAE file): equal inputs, equal id
    datetime_epoch_millis when it was written
    eval_result_metrics   {category: {metric: value}}
    eval_result_details   per-feature or per-class rows
    eval_result_unstructured  anything else
    sae_lens_id / sae_lens_release_id / sae_lens_version   the SAE's identity
    sae_cfg_dict          its config, with the keys SAEBench's graphing code reads: `architecture`
                          (as trained: a BatchTopK SAE is `batchtopk`, though stored in JumpReLU
                          form), `d_sae`, `d_in` and, for the SAEs trained here, `training_tokens`
    sae_bench_commit_hash PROTOCOL: no SAEBench commit ran; the string names the protocol followed

These are the fields every eval_output_schema_*.json of sae-bench 0.6.0 requires
(tests/fixtures/saebench_schemas). `interpflow saebench-eval-results` lays the files out as
SAEBench's tools read them (eval_results.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import metadata as package_metadata
from pathlib import Path

from interpflow.artifacts import open_tensors, read_tensor_metadata, write_json

# SAEBench writes its git commit here; these numbers come from interpflow's implementation of the
# protocol of sae-bench 0.6.0 (the version tests/conformance compares against), so a fixed string says so.
PROTOCOL = "interpflow implementation of the sae-bench 0.6.0 protocol (no SAEBench commit)"


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


def saebench_sae_cfg(config: dict, sae_path: str | Path) -> dict:
    """The SAE's stored config with SAEBench's keys: `architecture` as the SAE was trained (sae_lens
    saves a BatchTopK SAE as JumpReLU: that form stays under `inference_architecture`), `d_in` and
    `d_sae` from the tensors, and `training_tokens` (tokens seen: the training set times its epochs)
    for the SAEs trained here; a pretrained SAE's count is not in its sae_lens config, so it has none."""
    with open_tensors(sae_path) as f:
        d_in, d_sae = f.get_slice("W_enc").get_shape()
    stored = config.get("architecture")
    trained = config.get("trained_architecture") or stored or "unknown"
    cfg = {**config, "architecture": trained, "d_in": int(d_in), "d_sae": int(d_sae)}
    if stored and stored != trained:
        cfg["inference_architecture"] = stored
    if config.get("source") == "train" and config.get("trained_on_tokens"):
        training = config.get("config") if isinstance(config.get("config"), dict) else {}
        cfg["training_tokens"] = int(config["trained_on_tokens"] * training.get("epochs", 1))
    return cfg


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
        "sae_cfg_dict": saebench_sae_cfg(config, sae_path),
        "sae_bench_commit_hash": PROTOCOL,
    }
    write_json(output, path)
    return output


def _version(package: str) -> str:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return ""
