"""Stage: train one method for every concept of a shard from the cached activations.

Artifact: <out>.safetensors with `directions` [n_concepts, d_model] (unit norm) and
`concept_ids` [n_concepts]; <out_cfg> (cfg.json) with the method config and provenance.
"""

from __future__ import annotations

import time

import torch

from interpflow.artifacts import read_parquet, read_tensors, write_json, write_tensors
from interpflow.data.sources.base import SHARED_NEGATIVE
from interpflow.errors import ConfigError
from interpflow.methods import build_method


def tokens_of(acts: torch.Tensor, index, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """The token activations of the examples selected by `mask`, and each token's example number."""
    rows = index[mask]
    pieces = [acts[o : o + n] for o, n in zip(rows["offset"], rows["n_tokens"])]
    example = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor(rows["n_tokens"].to_numpy()))
    return torch.cat(pieces).float(), example


def training_sets(acts: torch.Tensor, index, concept_id: int, genre: str):
    """Positives of the concept; its own negatives plus shared negatives of its genre."""
    positive = (index["concept_id"] == concept_id) & (index["label"] == 1)
    own = (index["concept_id"] == concept_id) & (index["label"] == 0)
    shared = (index["concept_id"] == SHARED_NEGATIVE) & (index["genre"] == genre)
    negative = own | shared
    if not positive.any() or not negative.any():
        missing = "positive" if not positive.any() else f"negative (own, or shared of genre {genre!r})"
        raise ConfigError(f"concept {concept_id} has no {missing} training examples; the data source must provide them")
    pos, pos_example = tokens_of(acts, index, positive)
    neg, _ = tokens_of(acts, index, negative)
    return pos, neg, pos_example


def train(method_cfg: dict, concepts: str, shard: str, acts: str, index: str, out: str, out_cfg: str) -> None:
    """Train one method for every concept of a shard from cached activations."""
    method = build_method(method_cfg)
    shard_concepts = read_parquet(concepts).query("shard == @shard")
    activations = read_tensors(acts)["acts"]
    examples = read_parquet(index)
    start = time.perf_counter()
    directions = []
    for concept in shard_concepts.itertuples():
        pos, neg, pos_example = training_sets(activations, examples, concept.concept_id, concept.genre)
        directions.append(method.train_direction(pos, neg, pos_example))
    write_tensors(
        {"directions": torch.stack(directions), "concept_ids": torch.tensor(shard_concepts["concept_id"].to_numpy())},
        out,
        metadata={"method": method_cfg["name"]},
    )
    write_json({"method": method_cfg, "shard": shard, "concept_ids": shard_concepts["concept_id"].tolist(),
                "train_seconds": round(time.perf_counter() - start, 3)}, out_cfg)
