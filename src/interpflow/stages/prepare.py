"""Stage: convert a model once into a folder every later job loads in seconds."""

import json
from pathlib import Path

from interpflow.models.loading import MANIFEST, prepare_model
from interpflow.preflight import check_layers


def prepare(model_cfg: dict, out_dir: str) -> None:
    prepare_model(model_cfg, out_dir)
    manifest = Path(out_dir) / MANIFEST
    from transformers import AutoConfig

    try:
        target = json.loads(manifest.read_text())["id"]
        check_layers(model_cfg, AutoConfig.from_pretrained(target).num_hidden_layers)
    except Exception:
        manifest.unlink()  # a model that fails the check must not look prepared
        raise
