"""Stages: concept list, training data, evaluation data and steering prompts (one job per shard), and
the run's imbalance pool (one job per run).

The data jobs also write the generator's API usage (requests, answers from the cache, retries,
tokens, cost) as JSON beside the results: {} for sources that call no API."""

from __future__ import annotations

import numpy as np
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


def _check_steering_apart(cfg: dict, frame: pd.DataFrame, where: str) -> list[str]:
    """The steering instructions, checked to share none with `frame`'s instructions (the run's
    preflight checks a data set whole; generated data is checked here, shard by shard)."""
    instructions = load_instructions(cfg["steering"]["instructions"], "steering.instructions")
    check_steering_apart(instructions, frame["input"].tolist(), where)
    return instructions


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
    _check_steering_apart(cfg, frame, "this shard's training data")
    frame.insert(0, "example_id", range(len(frame)))
    write_parquet(frame, out)
    write_json(_usage(source), out_usage)


def eval_data(cfg: dict, concepts_path: str, shard: str, out_latent: str, out_steer: str, out_usage: str) -> None:
    """Write one shard's detection evaluation examples (with hard negatives) and its steering prompts."""
    shard_concepts = _shard_concepts(concepts_path, shard)
    source = data_source(cfg)
    latent = source.latent_eval_data(shard_concepts)
    check_positives(latent, shard_concepts, "evaluation")
    latent.insert(0, "example_id", range(len(latent)))
    instructions = _check_steering_apart(cfg, latent, "this shard's evaluation data")
    prompts = steer_prompts(shard_concepts, instructions, cfg["steering"]["instructions_per_concept"], cfg["seed"])
    # the prompting baseline's instruction per concept: the generator's where there is one, else "" (its template)
    written = source.steering_prompts(shard_concepts) if hasattr(source, "steering_prompts") else [""] * len(shard_concepts)
    prompts["steering_prompt"] = prompts["concept_id"].map(dict(zip(shard_concepts["concept_id"], written)))
    write_parquet(latent, out_latent)
    write_parquet(prompts, out_steer)
    write_json(_usage(source), out_usage)


def imbalance_pool(latent: list[str], ratio: int, seed: int, out: str) -> None:
    """Write the run's imbalance pool: the plain negatives (category `negative`) of every shard's
    evaluation data, each text once, in an order drawn with `seed`, at most `ratio` x the largest
    number of positives a concept has. Every concept is scored against the head of this one list,
    so the imbalanced metrics do not depend on how concepts are sharded."""
    frame = pd.concat([read_parquet(path) for path in latent], ignore_index=True)
    largest = int(frame[frame["category"] == "positive"].groupby("concept_id").size().max())
    negatives = frame[frame["category"] == "negative"].drop_duplicates(["input", "output"])
    negatives = negatives.sort_values(["concept_id", "input", "output"]).reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(negatives))[: ratio * largest]
    pool = negatives.iloc[order].drop(columns="example_id").reset_index(drop=True)
    pool.insert(0, "example_id", range(len(pool)))
    write_parquet(pool, out)
