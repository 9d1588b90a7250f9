"""Stage: convert a model once into a folder every later job loads in seconds."""

from interpflow.models.loading import prepare_model


def prepare(model_cfg: dict, out_dir: str) -> None:
    """Convert a model once into a folder that later jobs load quickly."""
    prepare_model(model_cfg, out_dir)
