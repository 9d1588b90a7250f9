"""Stages: concept list, training data, evaluation data and steering prompts (one job per shard)."""

from __future__ import annotations

import pandas as pd

from interpflow.artifacts import read_parquet, write_parquet
from interpflow.data.concepts import build_concepts
from interpflow.data.instructions import load_instructions, steer_prompts
from interpflow.errors import ConfigError
from interpflow.preflight import check_positives, data_source


def concepts(cfg: dict, out: str) -> None:
    """Write the experiment's concept table (concept_id, concept, genre, shard, source)."""
    write_parquet(build_concepts(cfg, data_source(cfg).concepts()), out)


def _shard_concepts(concepts_path: str, shard: str) -> pd.DataFrame:
    frame = read_parquet(concepts_path)
    frame = frame[frame["shard"] == shard]
    if frame.empty:
        raise ConfigError(f"shard {shard} has no concepts in {concepts_path}")
    return frame


def train_data(cfg: dict, concepts_path: str, shard: str, out: str) -> None:
    """Write the training examples of one shard's concepts."""
    shard_concepts = _shard_concepts(concepts_path, shard)
    frame = data_source(cfg).train_data(shard_concepts)
    check_positives(frame, shard_concepts, "training")
    frame.insert(0, "example_id", range(len(frame)))
    write_parquet(frame, out)


def eval_data(cfg: dict, concepts_path: str, shard: str, out_latent: str, out_steer: str) -> None:
    """Write one shard's detection evaluation examples (with hard negatives) and its steering prompts."""
    shard_concepts = _shard_concepts(concepts_path, shard)
    source = data_source(cfg)
    latent = source.latent_eval_data(shard_concepts)
    check_positives(latent, shard_concepts, "evaluation")
    latent.insert(0, "example_id", range(len(latent)))
    instructions = load_instructions(cfg["generator"].get("instructions", "demo"))
    prompts = steer_prompts(shard_concepts, instructions, cfg["steering"]["instructions_per_concept"], cfg["seed"])
    write_parquet(latent, out_latent)
    write_parquet(prompts, out_steer)
