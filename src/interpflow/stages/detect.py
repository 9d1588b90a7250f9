"""Stage: score every evaluation example of a shard with every concept's artifact.

Scores: each method's token latent, reduced to max and mean over the example's scored tokens
(position 0 and the rest of the prefix are never scored); text methods score whole examples.
Each row pairs one example with one scoring concept. The run's imbalance pool (plain negatives
drawn once per run) is scored too, by every concept, for the imbalanced metrics.

Artifact columns: concept_id (scoring), example_id, example_concept_id, category, label
(1 iff the example is a positive of the scoring concept), in_pool (the row scores a pool example;
example_id is then the pool's), max_score, mean_score.
"""

from __future__ import annotations

import pandas as pd

from interpflow.artifacts import read_parquet, read_tensors, write_parquet
from interpflow.methods import build_method
from interpflow.methods.data import EvalData
from interpflow.stages.train import model_handle
from interpflow.errors import ConfigError


def _evaluation_set(data: str, acts: str | None, index: str | None) -> EvalData:
    examples = read_parquet(data)
    evaluation = EvalData(examples=examples)
    if acts is not None:
        cached = read_parquet(index)
        if not cached["example_id"].equals(examples["example_id"]):
            raise ConfigError(f"{index} does not list the examples of {data} in order; re-run cache_activations")
        evaluation.examples = examples.assign(n_tokens=cached["n_tokens"].to_numpy())
        evaluation.acts = read_tensors(acts)["acts"]
    return evaluation


def _score_rows(method, tensors: dict, concept_ids: list[int], evaluation: EvalData, in_pool: bool) -> pd.DataFrame:
    max_scores, mean_scores = method.score_examples(tensors, evaluation)
    examples = evaluation.examples
    frames = []
    for column, concept_id in enumerate(concept_ids):
        frames.append(pd.DataFrame({
            "concept_id": concept_id,
            "example_id": examples["example_id"],
            "example_concept_id": examples["concept_id"],
            "category": examples["category"],
            "label": ((examples["concept_id"] == concept_id) & (examples["category"] == "positive") & (not in_pool)).astype(int),
            "in_pool": in_pool,
            "max_score": max_scores[:, column].float().numpy(),
            "mean_score": mean_scores[:, column].float().numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


def detect(method_cfg: dict, concepts: str, shard: str, data: str, out: str, artifact: str | None = None,
           acts: str | None = None, index: str | None = None, model_dir: str | None = None,
           model_cfg: dict | None = None, layer: int | None = None, pool: str | None = None,
           pool_acts: str | None = None, pool_index: str | None = None) -> None:
    """Score every evaluation example of a shard, and every example of the run's imbalance pool,
    with every concept's artifact (a method without training: every concept of the shard)."""
    method = build_method(method_cfg)
    shard_concepts = read_parquet(concepts).query("shard == @shard")
    tensors = read_tensors(artifact) if artifact is not None else {}
    concept_ids = tensors.pop("concept_ids").tolist() if artifact is not None else shard_concepts["concept_id"].tolist()
    names = shard_concepts.set_index("concept_id")["concept"]
    scoring = pd.DataFrame({"concept_id": concept_ids, "concept": [names[c] for c in concept_ids]})
    sets = [(_evaluation_set(data, acts, index), False)]
    if pool is not None:
        sets.append((_evaluation_set(pool, pool_acts, pool_index), True))
    handle = model_handle(model_dir, model_cfg, layer) if method.detection_needs() == "model" else None
    frames = []
    for evaluation, in_pool in sets:
        evaluation.model, evaluation.concepts = handle, scoring
        frames.append(_score_rows(method, tensors, concept_ids, evaluation, in_pool))
    write_parquet(pd.concat(frames, ignore_index=True), out)
