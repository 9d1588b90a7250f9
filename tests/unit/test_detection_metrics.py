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
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    # Index 0 is sklearn's "predict nothing" threshold (inf), not a real score.
    youden_j, thresholds = (tpr - fpr)[1:], thresholds[1:]
    # Thresholds come highest first, so argmax picks the highest of tied ones;
    # the tolerance only absorbs float rounding between equal J values.
    expected = thresholds[np.argmax(youden_j >= youden_j.max() - 1e-12)]
    assert youden_threshold(labels, scores) == expected


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


def test_hard_negative_accuracy_hand_example() -> None:
    # Below 0.5: 0.1, 0.49 -> 2 of 4 (0.5 itself is predicted positive).
    assert hard_negative_accuracy([0.1, 0.5, 0.49, 0.9], 0.5) == 0.5
    assert math.isnan(hard_negative_accuracy([], 0.5))
    assert math.isnan(hard_negative_accuracy([0.1], float("nan")))


def _hand_frame() -> pd.DataFrame:
    """Concept 1: 3 positives, 3 negatives, 2 hard negatives; concept 2: one of each class."""
    rows = [
        (1, 10, "positive", 0.9), (1, 11, "positive", 0.8), (1, 12, "positive", 0.4),
        (1, 13, "negative", 0.1), (1, 14, "negative", 0.5), (1, 15, "negative", 0.3),
        (1, 16, "hard_negative", 0.85), (1, 17, "hard_negative", 0.2),
        (2, 20, "positive", 0.7), (2, 21, "negative", 0.6),
    ]
    return pd.DataFrame(rows, columns=["concept_id", "example_id", "category", "score"])


def _hand_cross_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Concept 1's artifact on concept 2's examples and concept 2's on concept 1's.

    Each concept's rows for its own examples repeat the frame's scores, as a
    real pipeline would; they must not be counted twice.
    """
    own = frame[["concept_id", "example_id", "score"]]
    other = pd.DataFrame(
        [(1, 20, 0.95), (1, 21, 0.05)] + [(2, i, 0.1) for i in range(10, 18)],
        columns=["concept_id", "example_id", "score"],
    )
    return pd.concat([own, other], ignore_index=True)


def test_detection_table_hand_example() -> None:
    table = detection_table(_hand_frame()).set_index("concept_id")
    one, two = table.loc[1], table.loc[2]
    assert (one["n_pos"], one["n_neg"], one["n_hard"]) == (3, 3, 2)
    # 8 of the 9 positive/negative pairs are ordered correctly (0.4 < 0.5).
    assert one["roc_auc"] == pytest.approx(8 / 9)
    # J = 2/3 at 0.8 and at 0.4; the higher threshold wins the tie.
    assert one["threshold"] == 0.8
    # Hard negatives 0.85 (>= 0.8, wrong) and 0.2 (right).
    assert one["hard_negative_accuracy"] == 0.5
    # Best F1 at 0.4: TP 3, FP 1, FN 0 -> 6/7.
    assert one["f1"] == pytest.approx(6 / 7)
    assert math.isnan(one["imbalanced_f1"]) and math.isnan(one["imbalanced_roc_auc"])
    assert (two["n_pos"], two["n_neg"], two["n_hard"]) == (1, 1, 0)
    assert (two["roc_auc"], two["threshold"], two["f1"]) == (1.0, 0.7, 1.0)
    assert math.isnan(two["hard_negative_accuracy"])


def test_detection_table_imbalanced_pool() -> None:
    frame = _hand_frame()
    table = detection_table(frame, cross_scores=_hand_cross_scores(frame)).set_index("concept_id")
    one, two = table.loc[1], table.loc[2]
    # Concept 1's pool: own negatives 0.1 0.5 0.3, hard 0.85 0.2, concept 2's examples 0.95 0.05.
    # Correctly ordered pairs: 0.9 -> 6, 0.8 -> 5, 0.4 -> 4, of 3 x 7.
    assert one["imbalanced_roc_auc"] == pytest.approx(15 / 21)
    # Best threshold 0.4: TP 3, FP 3 (0.5, 0.85, 0.95) -> 6/9.
    assert one["imbalanced_f1"] == pytest.approx(2 / 3)
    # Concept 2's pool: own negative 0.6 and concept 1's eight examples at 0.1.
    assert two["imbalanced_roc_auc"] == 1.0
    assert two["imbalanced_f1"] == 1.0
    # The balanced columns do not change.
    assert one["roc_auc"] == pytest.approx(8 / 9)


def test_detection_table_pool_is_capped_by_ratio() -> None:
    # One positive at 0.5; ten other-concept examples all score 0.9 under its artifact.
    frame = pd.DataFrame(
        [(1, 0, "positive", 0.5)] + [(2, i, "negative", 0.0) for i in range(1, 11)],
        columns=["concept_id", "example_id", "category", "score"],
    )
    cross = pd.DataFrame([(1, i, 0.9) for i in range(1, 11)], columns=["concept_id", "example_id", "score"])
    for ratio, pool_size in ((3, 3), (100, 10)):
        row = detection_table(frame, imbalance_ratio=ratio, cross_scores=cross).set_index("concept_id").loc[1]
        # Predicting everything positive is best: F1 = 2 / (2 + pool size).
        assert row["imbalanced_f1"] == pytest.approx(2 / (2 + pool_size))
        assert row["imbalanced_roc_auc"] == 0.0


def test_detection_table_sampling_is_seeded() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "concept_id": [1] * 4 + [2] * 200,
            "example_id": range(204),
            "category": ["positive"] * 4 + ["negative"] * 200,
            "score": rng.normal(size=204),
        }
    )
    cross = pd.DataFrame({"concept_id": 1, "example_id": range(4, 204), "score": rng.normal(size=200)})
    first = detection_table(frame, imbalance_ratio=5, seed=3, cross_scores=cross)
    again = detection_table(frame, imbalance_ratio=5, seed=3, cross_scores=cross)
    pd.testing.assert_frame_equal(first, again)


def test_detection_table_needs_example_ids_with_cross_scores() -> None:
    frame = _hand_frame()
    with pytest.raises(ValueError, match="example_id"):
        detection_table(frame.drop(columns="example_id"), cross_scores=_hand_cross_scores(frame))


def test_detection_table_rejects_unknown_category() -> None:
    frame = _hand_frame()
    frame.loc[0, "category"] = "maybe"
    with pytest.raises(ValueError, match="maybe"):
        detection_table(frame)
