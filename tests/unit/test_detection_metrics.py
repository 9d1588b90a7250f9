"""Tests of interpflow.metrics.detection against scikit-learn and hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

from interpflow.metrics.detection import (
    best_f1,
    detection_table,
    hard_negative_accuracy,
    hard_negative_rejection,
    roc_auc,
    youden_threshold,
)

CASES = [(seed, size) for seed in range(20) for size in (2, 7, 50, 301)]


def _random_data(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Both classes present, scores rounded to one decimal so many ties occur."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=size)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=size) + 0.7 * labels, 1)
    return labels, scores


@pytest.mark.parametrize(("seed", "size"), CASES)
def test_roc_auc_matches_sklearn(seed: int, size: int) -> None:
    labels, scores = _random_data(seed, size)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_single_class_is_nan() -> None:
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(roc_auc([0, 0], [0.1, 0.2]))


def test_roc_auc_all_tied_is_half() -> None:
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5


@pytest.mark.parametrize(("seed", "size"), CASES)
def test_youden_threshold_matches_sklearn_roc_curve(seed: int, size: int) -> None:
    labels, scores = _random_data(seed, size)
    fpr, tpr, thresholds = roc_curve(labels, scores)
    # AxBench's recipe exactly: argmax of tpr - fpr in floats over the points roc_curve keeps, so float
    # rounding breaks near-ties; index 0 is its "predict nothing" threshold (inf), no threshold for us.
    best = int(np.argmax(tpr - fpr))
    expected = thresholds[best] if best else float("nan")
    assert youden_threshold(labels, scores) == pytest.approx(expected, nan_ok=True, rel=0, abs=0)


@pytest.mark.parametrize(("seed", "size"), CASES)
def test_best_f1_matches_brute_force(seed: int, size: int) -> None:
    labels, scores = _random_data(seed, size)
    candidates = np.unique(scores)[::-1]  # highest first: ties go to the highest threshold
    f1s = [f1_score(labels, (scores >= t).astype(int)) for t in candidates]
    best = int(np.argmax(f1s))
    f1, threshold = best_f1(labels, scores)
    assert f1 == pytest.approx(f1s[best], abs=1e-12)
    assert threshold == candidates[best]


def test_best_f1_without_positives_is_nan() -> None:
    f1, threshold = best_f1([0, 0], [0.3, 0.4])
    assert math.isnan(f1) and math.isnan(threshold)


def test_hard_negative_rejection_hand_example() -> None:
    # Below 0.5: 0.1, 0.49 -> 2 of 4 (0.5 itself is predicted positive).
    assert hard_negative_rejection([0.1, 0.5, 0.49, 0.9], 0.5) == 0.5
    assert math.isnan(hard_negative_rejection([], 0.5))
    assert math.isnan(hard_negative_rejection([0.1], float("nan")))


def _hand_frame() -> pd.DataFrame:
    """Concept 1: 3 positives, 3 negatives, 2 hard negatives; concept 2: one of each class."""
    rows = [
        (1, 10, "positive", 0.9), (1, 11, "positive", 0.8), (1, 12, "positive", 0.4),
        (1, 13, "negative", 0.1), (1, 14, "negative", 0.5), (1, 15, "negative", 0.3),
        (1, 16, "hard_negative", 0.85), (1, 17, "hard_negative", 0.2),
        (2, 20, "positive", 0.7), (2, 21, "negative", 0.6),
    ]
    return pd.DataFrame(rows, columns=["concept_id", "example_id", "category", "score"])


def _hand_pool() -> pd.DataFrame:
    """The run's imbalance pool (example ids 0..4, in the pool's order) scored by each concept."""
    rows = [(1, i, score) for i, score in enumerate([0.95, 0.05, 0.5, 0.85, 0.3])]
    rows += [(2, i, 0.1) for i in range(5)]
    return pd.DataFrame(rows, columns=["concept_id", "example_id", "score"]).sample(frac=1.0, random_state=0)


def test_detection_table_hand_example() -> None:
    table = detection_table(_hand_frame()).set_index("concept_id")
    one, two = table.loc[1], table.loc[2]
    assert (one["n_pos"], one["n_neg"], one["n_hard"], one["n_pool"]) == (3, 3, 2, 0)
    # 8 of the 9 positive/negative pairs are ordered correctly (0.4 < 0.5).
    assert one["roc_auc"] == pytest.approx(8 / 9)
    # J = 2/3 at 0.8 and at 0.4, but in floats (as AxBench computes tpr - fpr) 2/3 - 0 is 0.6666666666666666
    # and 1 - 1/3 is 0.6666666666666667: 0.4 wins.
    assert one["threshold"] == 0.4
    # AxBench: at 0.4, positives all right (1); hard negatives 0.85 wrong, 0.2 right (1/2).
    assert one["hard_negative_accuracy"] == pytest.approx((1 + 1 / 2) / 2)
    assert one["hard_negative_rejection"] == 0.5
    # Best F1 at 0.4: TP 3, FP 1, FN 0 -> 6/7.
    assert one["f1"] == pytest.approx(6 / 7)
    assert math.isnan(one["imbalanced_f1"]) and math.isnan(one["imbalanced_roc_auc"])
    assert (two["n_pos"], two["n_neg"], two["n_hard"]) == (1, 1, 0)
    assert (two["roc_auc"], two["threshold"], two["f1"]) == (1.0, 0.7, 1.0)
    assert math.isnan(two["hard_negative_accuracy"]) and math.isnan(two["hard_negative_rejection"])


def test_axbench_hard_negative_accuracy_hand_examples() -> None:
    # Positives 0.9 0.6, negatives 0.1 0.7: J is 1/2 at 0.9 and at 0.6; 0.9 wins. Positives 1/2 right,
    # hard negatives 0.95 (wrong) 0.5 0.2 (right) 2/3.
    assert hard_negative_accuracy([0.9, 0.6], [0.1, 0.7], [0.95, 0.5, 0.2]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # No threshold beats chance (J <= 0): AxBench reports nothing.
    assert math.isnan(hard_negative_accuracy([0.1, 0.2], [0.5, 0.6], [0.0]))
    assert math.isnan(hard_negative_accuracy([0.9], [0.1], []))
    assert math.isnan(hard_negative_accuracy([], [0.1], [0.2]))


def test_axbench_hard_negative_accuracy_matches_its_sklearn_recipe() -> None:
    """AxBench's evaluator: min-max normalise, Youden threshold from roc_curve on positives and
    negatives, then the mean of the positives' and hard negatives' accuracies."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        pos, neg, hard = rng.normal(1, 1, 7), rng.normal(0, 1, 9), rng.normal(0.5, 1, 5)
        everything = np.concatenate([pos, neg, hard])
        norm = lambda x: (x - everything.min()) / (everything.max() - everything.min())  # noqa: E731
        fpr, tpr, thresholds = roc_curve(np.r_[np.ones(7), np.zeros(9)], norm(np.r_[pos, neg]))
        t = thresholds[int(np.argmax(tpr - fpr))]
        expected = float("nan") if np.isinf(t) else (np.mean(norm(pos) >= t) + np.mean(norm(hard) < t)) / 2
        assert hard_negative_accuracy(pos, neg, hard) == pytest.approx(expected, nan_ok=True)


def test_detection_table_imbalanced_pool() -> None:
    """A pool shorter than the ratio asks for is scored only when the user opts in (score_short_pool)."""
    table = detection_table(_hand_frame(), imbalance_ratio=100, pool_scores=_hand_pool(),
                            score_short_pool=True).set_index("concept_id")
    one, two = table.loc[1], table.loc[2]
    assert one["n_pool"] == 5 and two["n_pool"] == 5  # 100 x n_pos is more than the pool has
    assert one["pool_ratio"] == pytest.approx(5 / 3) and two["pool_ratio"] == 5.0
    assert one["imbalanced_note"] == "pool of 5 negatives for 3 positives (1:1.7, below 1:100)"
    # Concept 1: positives 0.9 0.8 0.4 against 0.95 0.05 0.5 0.85 0.3: correct pairs 0.9 -> 4, 0.8 -> 3, 0.4 -> 2.
    assert one["imbalanced_roc_auc"] == pytest.approx(9 / 15)
    # Best threshold 0.4: TP 3, FP 3 (0.95, 0.5, 0.85) -> 6/9.
    assert one["imbalanced_f1"] == pytest.approx(2 / 3)
    assert two["imbalanced_roc_auc"] == 1.0 and two["imbalanced_f1"] == 1.0
    # The concept's own negatives and hard negatives are not in the pool, and the balanced columns do not change.
    assert one["roc_auc"] == pytest.approx(8 / 9)


def test_detection_table_short_pool_gives_nan_with_the_reason() -> None:
    table = detection_table(_hand_frame(), imbalance_ratio=100, pool_scores=_hand_pool()).set_index("concept_id")
    assert table["imbalanced_f1"].isna().all() and table["imbalanced_roc_auc"].isna().all()
    assert table.loc[2, "imbalanced_note"] == "pool of 5 negatives for 1 positives (1:5.0, below 1:100)"
    assert table.loc[1, "roc_auc"] == pytest.approx(8 / 9)  # the balanced metrics stand


def test_detection_table_scores_every_concept_on_the_whole_pool() -> None:
    """As AxBench: every concept meets every pool example, whatever its number of positives."""
    table = detection_table(_hand_frame(), imbalance_ratio=1, pool_scores=_hand_pool()).set_index("concept_id")
    assert table.loc[1, "n_pool"] == 5 and table.loc[1, "imbalanced_note"] == ""
    assert table.loc[1, "imbalanced_roc_auc"] == pytest.approx(9 / 15)
    assert table.loc[2, "n_pool"] == 5 and table.loc[2, "pool_ratio"] == 5.0


def test_detection_table_rejects_unknown_category() -> None:
    frame = _hand_frame()
    frame.loc[0, "category"] = "maybe"
    with pytest.raises(ValueError, match="maybe"):
        detection_table(frame)
