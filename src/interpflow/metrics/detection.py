"""Concept-detection metrics in the style of AxBench.

Every method produces one detection score per example (the maximum over its
tokens).  For one concept, the examples are *positives* (they contain the
concept), *negatives* (generic text without it) and *hard negatives* (text
about related but different concepts).  The metrics here turn those scores
into ROC AUC, a Youden threshold, the accuracy on hard negatives at that
threshold and the best-threshold F1, plus an *imbalanced* variant where the
positives are scored against a much larger pool of negatives.

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


def youden_threshold(labels: ArrayLike, scores: ArrayLike) -> float:
    """Threshold maximising Youden's J = TPR - FPR (predict positive if ``score >= t``).

    Candidates are the distinct scores; among equally good thresholds the
    highest one wins.  NaN if only one class is present.
    """
    y, s = _labels_and_scores(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    thresholds, tp, fp = _counts_by_threshold(y, s)
    # J * n_pos * n_neg in exact integer arithmetic, so equal J values tie exactly.
    scaled_j = tp * n_neg - fp * n_pos
    return float(thresholds[int(np.argmax(scaled_j))])


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


def hard_negative_accuracy(hard_scores: ArrayLike, threshold: float) -> float:
    """Fraction of hard negatives classified negative (``score < threshold``).

    NaN if there are no hard negatives or the threshold is NaN.
    """
    s = np.asarray(hard_scores, dtype=float)
    if s.size == 0 or np.isnan(threshold):
        return float("nan")
    return float(np.mean(s < threshold))


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise ValueError naming the columns ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns: {missing}")


def _imbalanced_negatives(
    df: pd.DataFrame, cross_scores: pd.DataFrame, concept_id: int
) -> np.ndarray:
    """Scores, under concept ``concept_id``'s artifact, of every example that is not its positive.

    The pool holds the concept's own negatives and hard negatives (their
    ``score`` in ``df`` already is this concept's score) plus every example of
    the other concepts, scored with the rows of ``cross_scores`` for this
    concept.  Other concepts' examples without such a row are left out, and an
    example id that also belongs to this concept is counted once, from ``df``.
    """
    own = df[df["concept_id"] == concept_id]
    own_negatives = own.loc[own["category"] != POSITIVE, "score"].to_numpy(dtype=float)
    other_ids = df.loc[df["concept_id"] != concept_id, "example_id"]
    other_ids = other_ids[~other_ids.isin(own["example_id"])]
    cross = cross_scores[
        (cross_scores["concept_id"] == concept_id) & cross_scores["example_id"].isin(other_ids)
    ]
    return np.concatenate([own_negatives, cross["score"].to_numpy(dtype=float)])


def _sample_at_most(values: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """``values`` itself if it has at most ``limit`` entries, else ``limit`` drawn without replacement."""
    if values.size <= limit:
        return values
    return values[rng.choice(values.size, size=limit, replace=False)]


def _binary(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores for positives-versus-negatives metrics."""
    labels = np.concatenate([np.ones(positives.size, dtype=int), np.zeros(negatives.size, dtype=int)])
    return labels, np.concatenate([positives, negatives])


def _concept_row(
    concept_id: int,
    group: pd.DataFrame,
    pool: np.ndarray | None,
) -> dict[str, float | int]:
    """Metrics of one concept; ``pool`` is its imbalanced negative pool (None: not available)."""
    by_category = {c: group.loc[group["category"] == c, "score"].to_numpy(dtype=float) for c in CATEGORIES}
    positives, negatives, hard = (by_category[c] for c in CATEGORIES)
    labels, scores = _binary(positives, negatives)
    threshold = youden_threshold(labels, scores)
    row: dict[str, float | int] = {
        "concept_id": concept_id,
        "n_pos": positives.size,
        "n_neg": negatives.size,
        "n_hard": hard.size,
        "roc_auc": roc_auc(labels, scores),
        "threshold": threshold,
        "hard_negative_accuracy": hard_negative_accuracy(hard, threshold),
        "f1": best_f1(labels, scores)[0],
        "imbalanced_f1": float("nan"),
        "imbalanced_roc_auc": float("nan"),
    }
    if pool is not None:
        pool_labels, pool_scores = _binary(positives, pool)
        row["imbalanced_f1"] = best_f1(pool_labels, pool_scores)[0]
        row["imbalanced_roc_auc"] = roc_auc(pool_labels, pool_scores)
    return row


def detection_table(
    df: pd.DataFrame,
    imbalance_ratio: int = 100,
    seed: int = 0,
    cross_scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-concept detection metrics.

    ``df`` has one row per evaluation example with columns ``concept_id``,
    ``category`` ("positive" | "negative" | "hard_negative") and ``score`` (the
    method's detection score under that concept's artifact).  The result has
    one row per concept with columns ``concept_id, n_pos, n_neg, n_hard,
    roc_auc, threshold, hard_negative_accuracy, f1, imbalanced_f1,
    imbalanced_roc_auc``:

    * ``roc_auc``, ``threshold`` (Youden) and ``f1`` (best threshold) compare
      the positives with the concept's own negatives;
    * ``hard_negative_accuracy`` is the share of its hard negatives below that
      threshold;
    * ``imbalanced_f1`` and ``imbalanced_roc_auc`` compare the positives with
      a pool of negatives: the concept's own negatives and hard negatives plus
      all examples of the other concepts, scored by *this* concept's artifact.
      Those scores come from ``cross_scores`` (columns ``concept_id,
      example_id, score``: concept ``concept_id``'s artifact applied to
      example ``example_id``), which also requires an ``example_id`` column in
      ``df``.  Without ``cross_scores`` both columns are NaN.

    The pool holds at most ``imbalance_ratio`` negatives per positive; AxBench
    evaluates this imbalanced setting at 100 negatives per positive (the
    default).  Larger pools are subsampled without replacement with
    ``numpy.random.default_rng([seed, concept_id])``, seeded per concept so a
    concept's pool does not depend on which other concepts are in the table
    (concept ids must then be non-negative integers).
    """
    _require_columns(df, ("concept_id", "category", "score"), "df")
    unknown = set(df["category"]) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; expected {list(CATEGORIES)}")
    if cross_scores is not None:
        _require_columns(df, ("example_id",), "df (needed with cross_scores)")
        _require_columns(cross_scores, ("concept_id", "example_id", "score"), "cross_scores")

    rows = []
    for concept_id, group in df.groupby("concept_id", sort=True):
        pool = None
        if cross_scores is not None:
            n_pos = int((group["category"] == POSITIVE).sum())
            rng = np.random.default_rng([seed, int(concept_id)])
            pool = _sample_at_most(
                _imbalanced_negatives(df, cross_scores, concept_id), imbalance_ratio * n_pos, rng
            )
        rows.append(_concept_row(concept_id, group, pool))
    columns = [
        "concept_id", "n_pos", "n_neg", "n_hard", "roc_auc", "threshold",
        "hard_negative_accuracy", "f1", "imbalanced_f1", "imbalanced_roc_auc",
    ]
    return pd.DataFrame(rows, columns=columns)
