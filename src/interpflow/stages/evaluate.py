"""Stages: per-concept detection and steering metrics of one (model, layer, method) over all shards."""

from __future__ import annotations

import pandas as pd

from interpflow.artifacts import read_parquet, write_parquet
from interpflow.metrics.detection import detection_table
from interpflow.metrics.steering import factor_curve, steering_table


def _label(frame: pd.DataFrame, model: str, layer: int, method: str) -> pd.DataFrame:
    return frame.assign(model=model, layer=layer, method=method)


def evaluate_detection(model: str, layer: int, method: str, latent: list[str], concepts: str, detection_cfg: dict,
                       out: str) -> None:
    """Per-concept detection metrics of one (model, layer, method) over all shards."""
    tables = []
    for path in latent:
        scores = read_parquet(path).rename(columns={"max_score": "score"})
        own = scores[~scores["in_pool"] & (scores["concept_id"] == scores["example_concept_id"])]
        pool = scores[scores["in_pool"]]
        tables.append(detection_table(own, detection_cfg["imbalance_ratio"], pool_scores=pool))
    table = pd.concat(tables, ignore_index=True)
    names = read_parquet(concepts)[["concept_id", "concept"]]
    write_parquet(_label(names.merge(table, on="concept_id"), model, layer, method), out)


def evaluate_steering(model: str, layer: int, method: str, judged: list[str], out: str, out_curve: str) -> None:
    """Per-concept steering scores (factor chosen on select, reported on test) and the score-vs-factor curve."""
    frame = pd.concat([read_parquet(p) for p in judged], ignore_index=True)
    names = frame[["concept_id", "concept"]].drop_duplicates()
    write_parquet(_label(names.merge(steering_table(frame), on="concept_id"), model, layer, method), out)
    write_parquet(_label(factor_curve(frame), model, layer, method), out_curve)
