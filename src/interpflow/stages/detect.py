"""Stage: score every evaluation example of a shard with every concept's artifact.

Scores: each method's token latent, reduced to max and mean over the example's scored tokens
(position 0 and the rest of the prefix are never scored); text methods score whole examples.
Each row pairs one example with one scoring concept, so a concept's scores on other concepts'
examples are there for imbalanced F1.

Artifact columns: concept_id (scoring), example_id, example_concept_id, category, label
(1 iff the example is a positive of the scoring concept), max_score, mean_score.
"""

from __future__ import annotations

import pandas as pd

from interpflow.artifacts import read_parquet, read_tensors, write_parquet
from interpflow.methods import build_method
from interpflow.methods.data import EvalData
from interpflow.stages.train import model_handle


def detect(method_cfg: dict, artifact: str, data: str, out: str, acts: str | None = None, index: str | None = None,
           model_dir: str | None = None, model_cfg: dict | None = None, layer: int | None = None) -> None:
    """Score every evaluation example of a shard with every concept's artifact."""
    method = build_method(method_cfg)
    tensors = read_tensors(artifact)
    concept_ids = tensors.pop("concept_ids").tolist()
    examples = read_parquet(data)
    evaluation = EvalData(examples=examples)
    if acts is not None:
        cached = read_parquet(index)
        if not cached["example_id"].equals(examples["example_id"]):
            raise ValueError(f"{index} does not list the examples of {data} in order; re-run cache_activations")
        evaluation.examples = examples.assign(n_tokens=cached["n_tokens"].to_numpy())
        evaluation.acts = read_tensors(acts)["acts"]
    if method.needs == "model":
        evaluation.model = model_handle(model_dir, model_cfg, layer)
    max_scores, mean_scores = method.score_examples(tensors, evaluation)
    frames = []
    for column, concept_id in enumerate(concept_ids):
        frames.append(pd.DataFrame({
            "concept_id": concept_id,
            "example_id": examples["example_id"],
            "example_concept_id": examples["concept_id"],
            "category": examples["category"],
            "label": ((examples["concept_id"] == concept_id) & (examples["category"] == "positive")).astype(int),
            "max_score": max_scores[:, column].float().numpy(),
            "mean_score": mean_scores[:, column].float().numpy(),
        }))
    write_parquet(pd.concat(frames, ignore_index=True), out)
