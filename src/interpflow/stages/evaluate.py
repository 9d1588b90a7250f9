"""Stages: per-concept detection and steering metrics of one (model, layer, method) over all shards."""

from __future__ import annotations

import pandas as pd

from interpflow.artifacts import read_parquet, write_parquet
from interpflow.errors import JudgeError
from interpflow.metrics.detection import detection_table
from interpflow.metrics.steering import factor_curve, judge_columns, steering_table


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
        tables.append(detection_table(own, detection_cfg["imbalance_ratio"], pool_scores=pool,
                                      score_short_pool=detection_cfg["short_pool"] == "score"))
    table = pd.concat(tables, ignore_index=True)
    names = read_parquet(concepts)[["concept_id", "concept"]]
    write_parquet(_label(names.merge(table, on="concept_id"), model, layer, method), out)


def evaluate_steering(model: str, layer: int, method: str, judged: list[str], out: str, out_curve: str,
                      max_unparsed_share: float | None = None) -> None:
    """Per-concept steering scores (factor chosen on select, reported on test), the judge and its unreadable
    ratings, and the score-vs-factor curve. Stops (JudgeError) when more than `max_unparsed_share` of the
    method's ratings could not be read."""
    frame = pd.concat([read_parquet(p) for p in judged], ignore_index=True)
    judges = judge_columns(frame)
    check_unparsed(judges, max_unparsed_share, f"{model} L{layer} {method}", judged)
    names = frame[["concept_id", "concept"]].drop_duplicates()
    table = names.merge(steering_table(frame), on="concept_id").merge(judges, on="concept_id")
    write_parquet(_label(table, model, layer, method), out)
    write_parquet(_label(factor_curve(frame), model, layer, method), out_curve)


def check_unparsed(judges: pd.DataFrame, max_share: float | None, run: str, judged: list[str]) -> None:
    """Raise JudgeError when the share of unreadable ratings (scored 0) is above `max_share` (None: no cap)."""
    unparsed, ratings = int(judges["unparsed_ratings"].sum()), int(judges["ratings"].sum())
    if max_share is None or ratings == 0 or unparsed / ratings <= max_share:
        return
    raise JudgeError(
        f"the judge's rating could not be read in {unparsed} of {ratings} replies ({unparsed / ratings:.1%}) for "
        f"{run}, more than judge.max_unparsed_share={max_share:g}; those ratings would count as 0. See the replies "
        f"(concept_raw, instruction_raw, fluency_raw where unparsed_ratings > 0) in {judged[0]}"
        f"{' and the other shards' if len(judged) > 1 else ''}; then raise judge.max_tokens (null: no limit), use a "
        f"judge model that ends its reply with 'Rating: [[n]]', or raise judge.max_unparsed_share")
