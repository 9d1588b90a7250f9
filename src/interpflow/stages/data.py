"""Stages: concept list, training data, evaluation data and steering prompts (one job per shard), and
the run's imbalance pool (one job per run).

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


# detection.short_pool: what happens when the pool holds fewer than imbalance_ratio x a concept's positives
SHORT_POOL = {
    "nan": "the imbalanced metrics are NaN, with the reason in the leaderboard",
    "stop": "the run stops at the imbalance_pool job",
    "score": "the imbalanced metrics are computed at the ratio the pool allows, shown in the leaderboard",
}


def _pool_candidates(cfg: dict, latent: list[str]) -> pd.DataFrame:
    """The examples the pool is drawn from: a data set's whole evaluation data, every file of it (every concept, as
    AxBench draws it), else the evaluation data this run generated (every shard)."""
    if cfg["generator"]["name"] == "dataset":
        return data_source(cfg).whole_latent_eval_data()
    return pd.concat([read_parquet(path).drop(columns="example_id") for path in latent], ignore_index=True)


def pool_size(examples: pd.DataFrame, ratio: int) -> int:
    """AxBench's pool size, latent_num_of_examples x imbalance_factor: `ratio` x the positives per concept
    (the largest count a concept has)."""
    return ratio * int(examples[examples["category"] == "positive"].groupby("concept_id").size().max())


def draw_pool(negatives: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """AxBench's draw (DatasetFactory.create_imbalance_eval_df): `size` negatives sampled without replacement
    by pandas' DataFrame.sample with random_state=`seed`, that is the head of numpy RandomState(seed)'s
    permutation of them; all of them, in that order, when there are fewer than `size`."""
    return negatives.sample(n=min(size, len(negatives)), random_state=seed)


def imbalance_pool(cfg: dict, latent: list[str], out: str) -> None:
    """Write the run's imbalance pool: detection.imbalance_ratio x the positives per concept plain negatives
    (category `negative`) drawn with detection.pool_seed as AxBench draws them (draw_pool), from a data set's whole
    evaluation file or from this run's generated evaluation data. Every concept is scored against all of it.
    A shorter pool is written whole; detection.short_pool = stop refuses it here."""
    candidates = _pool_candidates(cfg, latent)
    ratio, short = cfg["detection"]["imbalance_ratio"], cfg["detection"]["short_pool"]
    size = pool_size(candidates, ratio)
    negatives = candidates[candidates["category"] == "negative"].reset_index(drop=True)
    if len(negatives) < size and short == "stop":
        where = "the data set's evaluation files" if cfg["generator"]["name"] == "dataset" else "this run's evaluation data"
        raise ConfigError(
            f"detection.imbalance_ratio={ratio} needs {size} plain negatives ({ratio} x {size // ratio} positives "
            f"per concept); {where} holds {len(negatives)} (1:{len(negatives) / (size // ratio):.1f}). Use a larger "
            f"data set, lower detection.imbalance_ratio, or set detection.short_pool to nan ({SHORT_POOL['nan']}) "
            f"or score ({SHORT_POOL['score']})")
    pool = draw_pool(negatives, size, cfg["detection"]["pool_seed"]).reset_index(drop=True)
    pool.insert(0, "example_id", range(len(pool)))
    write_parquet(pool, out)
