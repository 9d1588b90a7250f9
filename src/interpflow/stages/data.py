"""Stages: concept list, training data, evaluation data and steering prompts (one job per shard).

The data jobs also write the generator's API usage (requests, answers from the cache, retries,
tokens, cost) as JSON beside the results: {} for sources that call no API."""

from __future__ import annotations

import pandas as pd

from interpflow.artifacts import read_parquet, write_json, write_parquet
from interpflow.data.concepts import build_concepts
from interpflow.data.instructions import check_steering_apart, load_instructions, steer_prompts
from interpflow.errors import ConfigError
from interpflow.preflight import check_genre_source, check_positives, data_source


def _usage(source) -> dict:
    return source.usage() if hasattr(source, "usage") else {}


def concepts(cfg: dict, out: str, out_usage: str) -> None:
    """Write the experiment's concept table (concept_id, concept, genre, shard, source); with
    concepts.genre = ask, the generator model files each concept under text, code or math."""
    source = data_source(cfg)
    frame = build_concepts(cfg, source.concepts())
    check_genre_source(cfg, source)
    if cfg["concepts"].get("genre", "given") == "ask":
        frame["genre"] = source.assign_genres(frame["concept"].tolist())
    write_parquet(frame, out)
    write_json(_usage(source), out_usage)


def _shard_concepts(concepts_path: str, shard: str) -> pd.DataFrame:
    frame = read_parquet(concepts_path)
    frame = frame[frame["shard"] == shard]
    if frame.empty:
        raise ConfigError(f"shard {shard} has no concepts in {concepts_path}")
    return frame


def train_data(cfg: dict, concepts_path: str, shard: str, out: str, out_usage: str) -> None:
    """Write the training examples of one shard's concepts."""
    shard_concepts = _shard_concepts(concepts_path, shard)
    source = data_source(cfg)
    frame = source.train_data(shard_concepts)
    check_positives(frame, shard_concepts, "training")
    frame.insert(0, "example_id", range(len(frame)))
    write_parquet(frame, out)
    write_json(_usage(source), out_usage)


def eval_data(cfg: dict, concepts_path: str, shard: str, out_latent: str, out_steer: str, out_usage: str,
              seen_data: list[str] | None = None) -> None:
    """Write one shard's detection evaluation examples (with hard negatives) and its steering prompts;
    `seen_data` (the shard's training data) must share no instruction with the steering list."""
    shard_concepts = _shard_concepts(concepts_path, shard)
    source = data_source(cfg)
    latent = source.latent_eval_data(shard_concepts)
    check_positives(latent, shard_concepts, "evaluation")
    latent.insert(0, "example_id", range(len(latent)))
    instructions = load_instructions(cfg["steering"]["instructions"], "steering.instructions")
    seen = pd.concat([read_parquet(p)["input"] for p in seen_data or []] + [latent["input"]]).tolist()
    check_steering_apart(instructions, seen, "this run's training or evaluation data")
    prompts = steer_prompts(shard_concepts, instructions, cfg["steering"]["instructions_per_concept"], cfg["seed"])
    write_parquet(latent, out_latent)
    write_parquet(prompts, out_steer)
    write_json(_usage(source), out_usage)
