"""Concept-detection metrics, by AxBench's definitions where AxBench has one.

Every method produces one detection score per example (the maximum over its
tokens).  For one concept, the examples are *positives* (they contain the
concept), *negatives* (generic text without it) and *hard negatives* (text
about related but different concepts).  The metrics here turn those scores
into ROC AUC, a Youden threshold, AxBench's hard-negative accuracy at that
threshold and the best-threshold F1, plus an *imbalanced* variant where the
positives are scored against a fixed run-wide pool of plain negatives.

Thresholding convention everywhere: an example is predicted positive when
``score >= threshold``, and candidate thresholds are the distinct scores.

Only numpy and pandas are used, so the module has no scikit-learn dependency.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

POSITIVE = "positive"
NEGATIVE = "negative"
HARD_NEGATIVE = "hard_negative"
CATEGORIES = (POSITIVE, NEGATIVE, HARD_NEGATIVE)

ArrayLike = Sequence[float] | np.ndarray | pd.Series


def _labels_and_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert inputs to a boolean label array and a float score array."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN")
    return y == 1, s


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # last 1-based rank of each distinct value
    starts = ends - counts + 1  # first 1-based rank of each distinct value
    return ((starts + ends) / 2.0)[inverse]


def _counts_by_threshold(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives when predicting ``s >= t``, for every distinct score ``t``.

    Returns ``(thresholds, tp, fp)`` with thresholds in decreasing order.
    """
    distinct, inverse = np.unique(s, return_inverse=True)
    pos_at = np.bincount(inverse[y], minlength=distinct.size)
    neg_at = np.bincount(inverse[~y], minlength=distinct.size)
    # Walking from the highest score down, each step admits one more distinct score.
    return distinct[::-1], np.cumsum(pos_at[::-1]), np.cumsum(neg_at[::-1])


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC through the Mann-Whitney rank statistic (ties get average ranks).

    Equals the probability that a random positive scores above a random
    negative, counting ties as one half.  NaN if only one class is present.
    """
    y, s = _labels_and_scores(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(s)[y].sum()
    u_statistic = rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def _roc_corners(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Which (fp, tp) points scikit-learn's ``roc_curve`` keeps (drop_intermediate): the first, the last, and
    every point where the counts' second difference is not zero in either axis."""
    if tp.size <= 2:
        return np.ones(tp.size, dtype=bool)
    bends = (np.diff(fp, 2) != 0) | (np.diff(tp, 2) != 0)
    return np.r_[True, bends, True]


def _youden(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(threshold, J) maximising Youden's J = TPR - FPR as AxBench finds it: ``argmax(tpr - fpr)`` over
    scikit-learn's ``roc_curve`` points (its leading (0, 0) point included, in float arithmetic, so
    that float rounding breaks near-ties as it does there). NaNs if only one class is present; J <= 0
    means the optimum is that leading point, whose threshold is infinite (reported as NaN)."""
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    thresholds, tp, fp = _counts_by_threshold(y, s)
    kept = _roc_corners(tp, fp)
    thresholds = np.r_[np.inf, thresholds[kept]]
    j = np.r_[0, tp[kept]] / n_pos - np.r_[0, fp[kept]] / n_neg
    best = int(np.argmax(j))
    return (float("nan") if best == 0 else float(thresholds[best])), float(j[best])


def youden_threshold(labels: ArrayLike, scores: ArrayLike) -> float:
    """Threshold maximising Youden's J = TPR - FPR (predict positive if ``score >= t``).

    Found as AxBench finds it (``_youden``): candidates are the points
    scikit-learn's ``roc_curve`` keeps, J in float arithmetic, the first (the
    highest threshold) among equal J. NaN if only one class is present or no
    threshold beats chance (AxBench's optimum is then ``roc_curve``'s
    infinite first threshold).
    """
    return _youden(*_labels_and_scores(labels, scores))[0]


def best_f1(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Best F1 over thresholds ``score >= t`` and the threshold reaching it.

    Candidates are the distinct scores; among equally good thresholds the
    highest one wins.  Returns ``(nan, nan)`` when there are no positives.
    """
    y, s = _labels_and_scores(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan"), float("nan")
    thresholds, tp, fp = _counts_by_threshold(y, s)
    # F1 = 2TP / (2TP + FP + FN) with FN = n_pos - TP.
    f1 = 2.0 * tp / (tp + fp + n_pos)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def hard_negative_rejection(hard_scores: ArrayLike, threshold: float) -> float:
    """Fraction of hard negatives classified negative (``score < threshold``); not an AxBench metric.

    NaN if there are no hard negatives or the threshold is NaN.
    """
    s = np.asarray(hard_scores, dtype=float)
    if s.size == 0 or np.isnan(threshold):
        return float("nan")
    return float(np.mean(s < threshold))


def hard_negative_accuracy(positive_scores: ArrayLike, negative_scores: ArrayLike, hard_scores: ArrayLike) -> float:
    """AxBench's hard-negative accuracy: at the Youden threshold of positives against negatives,
    the mean of the positives' accuracy (``score >= t``) and the hard negatives' (``score < t``).

    NaN, as AxBench reports no value, when a class is empty or no threshold beats chance (J <= 0:
    scikit-learn's ``roc_curve`` then puts the optimum at its infinite first threshold).
    """
    positives = np.asarray(positive_scores, dtype=float)
    hard = np.asarray(hard_scores, dtype=float)
    labels, scores = _binary(positives, np.asarray(negative_scores, dtype=float))
    threshold, j = _youden(*_labels_and_scores(labels, scores))
    if hard.size == 0 or np.isnan(j) or j <= 0:
        return float("nan")
    return float((np.mean(positives >= threshold) + np.mean(hard < threshold)) / 2)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise ValueError naming the columns ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns: {missing}")


def _binary(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores for positives-versus-negatives metrics."""
    labels = np.concatenate([np.ones(positives.size, dtype=int), np.zeros(negatives.size, dtype=int)])
    return labels, np.concatenate([positives, negatives])


def _concept_row(concept_id: int, group: pd.DataFrame, pool: np.ndarray | None, ratio: int,
                 score_short_pool: bool) -> dict[str, float | int | str]:
    """Metrics of one concept; ``pool`` is the run's imbalance pool scored by it (None: not available).
    The imbalanced metrics need ``ratio`` x its positives in the pool, unless ``score_short_pool``."""
    by_category = {c: group.loc[group["category"] == c, "score"].to_numpy(dtype=float) for c in CATEGORIES}
    positives, negatives, hard = (by_category[c] for c in CATEGORIES)
    labels, scores = _binary(positives, negatives)
    threshold = youden_threshold(labels, scores)
    n_pool = 0 if pool is None else pool.size
    row: dict[str, float | int | str] = {
        "concept_id": concept_id,
        "n_pos": positives.size,
        "n_neg": negatives.size,
        "n_hard": hard.size,
        "n_pool": n_pool,
        "pool_ratio": n_pool / positives.size if positives.size else float("nan"),
        "roc_auc": roc_auc(labels, scores),
        "threshold": threshold,
        "hard_negative_accuracy": hard_negative_accuracy(positives, negatives, hard),
        "hard_negative_rejection": hard_negative_rejection(hard, threshold),
        "f1": best_f1(labels, scores)[0],
        "imbalanced_f1": float("nan"),
        "imbalanced_roc_auc": float("nan"),
        "imbalanced_note": "no imbalance pool scored" if pool is None else short_pool_note(n_pool, positives.size, ratio),
    }
    if n_pool and (not row["imbalanced_note"] or score_short_pool):
        pool_labels, pool_scores = _binary(positives, pool)
        row["imbalanced_f1"] = best_f1(pool_labels, pool_scores)[0]
        row["imbalanced_roc_auc"] = roc_auc(pool_labels, pool_scores)
    return row


def short_pool_note(n_pool: int, n_pos: int, ratio: int) -> str:
    """Why a concept's imbalanced metrics fall short of 1:``ratio`` ("" when they do not)."""
    if n_pool >= ratio * n_pos:
        return ""
    return f"pool of {n_pool} negatives for {n_pos} positives (1:{n_pool / max(n_pos, 1):.1f}, below 1:{ratio})"


DETECTION_COLUMNS = [
    "concept_id", "n_pos", "n_neg", "n_hard", "n_pool", "pool_ratio", "roc_auc", "threshold", "hard_negative_accuracy",
    "hard_negative_rejection", "f1", "imbalanced_f1", "imbalanced_roc_auc", "imbalanced_note",
]


def detection_table(df: pd.DataFrame, imbalance_ratio: int = 100, pool_scores: pd.DataFrame | None = None,
                    score_short_pool: bool = False) -> pd.DataFrame:
    """Per-concept detection metrics.

    ``df`` has one row per evaluation example of a concept with columns
    ``concept_id``, ``category`` ("positive" | "negative" | "hard_negative")
    and ``score`` (the method's detection score under that concept's
    artifact).  The result has one row per concept (DETECTION_COLUMNS):

    * ``roc_auc``, ``threshold`` (Youden) and ``f1`` (best threshold) compare
      the positives with the concept's own negatives;
    * ``hard_negative_accuracy`` is AxBench's: the mean of the positives' and
      the hard negatives' accuracy at that threshold; ``hard_negative_rejection``
      is the hard negatives' share alone;
    * ``imbalanced_f1`` and ``imbalanced_roc_auc`` compare the positives with
      every example (``n_pool``) of the run's imbalance pool, plain negatives
      drawn once per run as AxBench draws them (``pool_scores``: concept_id,
      example_id, score), as AxBench scores every concept on its one pool.
      ``pool_ratio`` is n_pool / n_pos. Below ``imbalance_ratio`` both are NaN
      and ``imbalanced_note`` says why, unless ``score_short_pool``. Without
      ``pool_scores`` both are NaN.
    """
    _require_columns(df, ("concept_id", "category", "score"), "df")
    unknown = set(df["category"]) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; expected {list(CATEGORIES)}")
    if pool_scores is not None:
        _require_columns(pool_scores, ("concept_id", "example_id", "score"), "pool_scores")
        pool_scores = pool_scores.sort_values(["concept_id", "example_id"])
        pools = {c: g["score"].to_numpy(dtype=float) for c, g in pool_scores.groupby("concept_id")}

    rows = []
    for concept_id, group in df.groupby("concept_id", sort=True):
        pool = None
        if pool_scores is not None:
            pool = pools.get(concept_id, np.empty(0))
        rows.append(_concept_row(concept_id, group, pool, imbalance_ratio, score_short_pool))
    return pd.DataFrame(rows, columns=DETECTION_COLUMNS)
