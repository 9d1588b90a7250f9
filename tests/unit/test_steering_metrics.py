"""Tests of interpflow.metrics.steering on hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from interpflow.metrics.steering import factor_curve, harmonic_mean, steering_table

COLUMNS = [
    "concept_id", "instruction_id", "split", "factor",
    "concept_score", "instruction_score", "fluency_score", "perplexity",
]


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (concept, instruction, split, factor, score triple, perplexity)."""
    return pd.DataFrame(
        [(c, i, split, factor, *scores, ppl) for c, i, split, factor, scores, ppl in rows],
        columns=COLUMNS,
    )


def test_harmonic_mean_known_values() -> None:
    result = harmonic_mean([1, 2, 1, 0.5], [1, 2, 2, 1], [1, 2, 2, 2])
    np.testing.assert_allclose(result, [1.0, 2.0, 1.5, 3 / 3.5])


def test_harmonic_mean_zero_rule_and_series() -> None:
    concept = pd.Series([0.0, 2.0, 2.0, 1.0])
    instruction = pd.Series([2.0, 0.0, 2.0, 1.0])
    fluency = pd.Series([2.0, 2.0, 0.0, 1.0])
    result = harmonic_mean(concept, instruction, fluency)
    assert isinstance(result, np.ndarray)
    assert list(result) == [0.0, 0.0, 0.0, 1.0]
    assert harmonic_mean(0, 0, 0) == 0.0
    assert math.isnan(float(harmonic_mean(np.nan, 1, 1)))


def test_best_factor_is_chosen_on_select_and_reported_on_test() -> None:
    df = _frame([
        # Select split: factor 0.5 averages 1.5, factor 1.0 averages 1.0.
        (7, 0, "select", 0.5, (2, 2, 2), 10.0),
        (7, 1, "select", 0.5, (1, 1, 1), 10.0),
        (7, 0, "select", 1.0, (1, 1, 1), 20.0),
        (7, 1, "select", 1.0, (1, 1, 1), 20.0),
        # Test split disagrees: factor 1.0 would look better here.
        (7, 2, "test", 0.5, (2, 1, 0), 4.0),
        (7, 3, "test", 0.5, (1, 1, 1), 6.0),
        (7, 2, "test", 1.0, (2, 2, 2), 30.0),
        (7, 3, "test", 1.0, (2, 2, 2), 30.0),
    ])
    row = steering_table(df).set_index("concept_id").loc[7]
    assert row["best_factor"] == 0.5
    assert row["select_overall"] == pytest.approx(1.5)
    # Mean of per-row harmonic means (0 and 1), not the harmonic mean of the means (0.818).
    assert row["overall"] == pytest.approx(0.5)
    assert (row["concept_score"], row["instruction_score"], row["fluency_score"]) == (1.5, 1.0, 0.5)
    assert row["perplexity"] == pytest.approx(5.0)
    assert row["n"] == 2


def test_tie_goes_to_the_smaller_factor() -> None:
    df = _frame([
        (1, 0, "select", 2.0, (1, 1, 1), 1.0),
        (1, 0, "select", 1.0, (1, 1, 1), 1.0),
        (1, 0, "select", 3.0, (0.5, 1, 1), 1.0),
        (1, 1, "test", 2.0, (2, 2, 2), 1.0),
        (1, 1, "test", 1.0, (1, 1, 1), 1.0),
    ])
    row = steering_table(df).set_index("concept_id").loc[1]
    assert row["best_factor"] == 1.0
    assert row["overall"] == 1.0


def test_nan_factor_is_one_group() -> None:
    nan = float("nan")
    df = _frame([
        (3, 0, "select", nan, (2, 2, 2), 8.0),
        (3, 1, "select", nan, (1, 1, 1), 8.0),
        (3, 2, "test", nan, (1, 2, 2), 9.0),
        (3, 3, "test", nan, (2, 2, 2), 11.0),
    ])
    row = steering_table(df).set_index("concept_id").loc[3]
    assert math.isnan(row["best_factor"])
    assert row["select_overall"] == pytest.approx(1.5)
    assert row["overall"] == pytest.approx((1.5 + 2.0) / 2)
    assert row["perplexity"] == pytest.approx(10.0)
    assert row["n"] == 2


def test_concepts_are_selected_independently() -> None:
    df = _frame([
        (1, 0, "select", 1.0, (2, 2, 2), 1.0),
        (1, 0, "select", 2.0, (1, 1, 1), 1.0),
        (1, 1, "test", 1.0, (1, 1, 1), 1.0),
        (1, 1, "test", 2.0, (2, 2, 2), 1.0),
        (2, 0, "select", 1.0, (1, 1, 1), 1.0),
        (2, 0, "select", 2.0, (2, 2, 2), 1.0),
        (2, 1, "test", 1.0, (2, 2, 2), 1.0),
        (2, 1, "test", 2.0, (0.5, 0.5, 0.5), 1.0),
    ])
    table = steering_table(df)
    assert list(table.columns) == [
        "concept_id", "best_factor", "select_overall", "concept_score",
        "instruction_score", "fluency_score", "overall", "perplexity", "n",
    ]
    assert list(table["best_factor"]) == [1.0, 2.0]
    assert list(table["overall"]) == [1.0, 0.5]


def test_factor_curve_means_per_split_and_factor() -> None:
    df = _frame([
        (1, 0, "select", 1.0, (2, 2, 2), 1.0),
        (2, 0, "select", 1.0, (1, 1, 1), 1.0),
        (1, 0, "select", 2.0, (2, 1, 0), 1.0),
        (1, 1, "test", 1.0, (1, 1, 1), 1.0),
    ])
    curve = factor_curve(df).set_index(["split", "factor"])
    assert curve.loc[("select", 1.0), "overall"] == pytest.approx(1.5)
    assert curve.loc[("select", 1.0), "concept_score"] == pytest.approx(1.5)
    assert curve.loc[("select", 2.0), "overall"] == 0.0
    assert curve.loc[("test", 1.0), "n"] == 1
    assert len(curve) == 3


def _judged(tmp_path, unparsed: list[int]) -> str:
    """A judged shard of one concept: one generation per entry of `unparsed` (its unreadable ratings)."""
    from interpflow.artifacts import write_parquet

    rows = [(3, i, "select" if i % 2 else "test", 1.0, (2, 2, 2), 10.0) for i in range(len(unparsed))]
    frame = _frame(rows).assign(concept="the ocean", unparsed_ratings=unparsed, judge_id="openai:m", judge_proxy=False)
    path = tmp_path / "judged.parquet"
    write_parquet(frame, path)
    return str(path)


def test_judge_columns_count_every_rating_of_a_concept() -> None:
    from interpflow.metrics.steering import judge_columns

    frame = _frame([(1, 0, "select", 1.0, (2, 2, 2), 10.0), (1, 1, "test", 2.0, (0, 2, 2), 10.0),
                    (2, 0, "test", 1.0, (1, 1, 1), 10.0)])
    frame = frame.assign(unparsed_ratings=[0, 2, 1], judge_id="openai:m", judge_proxy=False)
    table = judge_columns(frame).set_index("concept_id")
    assert table.loc[1, "unparsed_ratings"] == 2 and table.loc[1, "ratings"] == 6
    assert table.loc[2, "unparsed_ratings"] == 1 and table.loc[2, "ratings"] == 3
    assert (table["judge_id"] == "openai:m").all() and not table["judge_proxy"].any()


def test_evaluation_stops_when_too_many_ratings_are_unreadable(tmp_path) -> None:
    from interpflow.errors import JudgeError
    from interpflow.stages.evaluate import evaluate_steering

    judged = _judged(tmp_path, [1, 0, 0, 0])  # 1 of 12 ratings unreadable: 8.3%
    out, curve = str(tmp_path / "out.parquet"), str(tmp_path / "curve.parquet")
    with pytest.raises(JudgeError, match=r"1 of 12 replies \(8\.3%\) for m L3 diffmean, more than "
                                         r"judge\.max_unparsed_share=0\.05"):
        evaluate_steering("m", 3, "diffmean", [judged], out, curve, max_unparsed_share=0.05)
    evaluate_steering("m", 3, "diffmean", [judged], out, curve, max_unparsed_share=0.1)
    table = pd.read_parquet(out)
    assert (table["unparsed_ratings"].sum(), table["ratings"].sum()) == (1, 12) and (table["judge_id"] == "openai:m").all()
    evaluate_steering("m", 3, "diffmean", [judged], out, curve)  # no cap (the offline judge's case)
