"""Stage: score every evaluation example of a shard with every concept's artifact.

Scores: token score = h . w; example score = max (and mean) over its scored tokens (position 0
and the rest of the prefix are not in the cache at all). Each row pairs one example with one
scoring concept, so a concept's scores on other concepts' examples are there for imbalanced F1.

Artifact columns: concept_id (scoring), example_id, example_concept_id, category, label
(1 iff the example is a positive of the scoring concept), max_score, mean_score.
"""

from __future__ import annotations

import pandas as pd
import torch

from interpflow.artifacts import read_parquet, read_tensors, write_parquet


def example_scores(token_scores: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and mean over each example's tokens: token_scores [n_tokens, n_concepts] -> [n_examples, n_concepts]."""
    max_scores = torch.segment_reduce(token_scores, "max", lengths=lengths, axis=0)
    mean_scores = torch.segment_reduce(token_scores, "mean", lengths=lengths, axis=0)
    return max_scores, mean_scores


def detect(artifact: str, acts: str, index: str, out: str) -> None:
    """Score every evaluation example of a shard with every concept's direction."""
    weights = read_tensors(artifact)
    directions, concept_ids = weights["directions"], weights["concept_ids"].tolist()
    examples = read_parquet(index)
    token_scores = read_tensors(acts)["acts"].float() @ directions.T
    max_scores, mean_scores = example_scores(token_scores, torch.tensor(examples["n_tokens"].to_numpy()))
    frames = []
    for column, concept_id in enumerate(concept_ids):
        frames.append(pd.DataFrame({
            "concept_id": concept_id,
            "example_id": examples["example_id"],
            "example_concept_id": examples["concept_id"],
            "category": examples["category"],
            "label": ((examples["concept_id"] == concept_id) & (examples["category"] == "positive")).astype(int),
            "max_score": max_scores[:, column].numpy(),
            "mean_score": mean_scores[:, column].numpy(),
        }))
    write_parquet(pd.concat(frames, ignore_index=True), out)
