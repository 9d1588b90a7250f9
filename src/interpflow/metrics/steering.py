"""Concept-steering metrics in the style of AxBench.

A judge rates every steered generation on three 0-2 scales: how well it shows
the concept (``concept_score``), how well it follows the instruction
(``instruction_score``) and how fluent it is (``fluency_score``).  The
*overall* score of a generation is the harmonic mean of the three, so one
failing axis sinks it.

Methods with a steering factor are tuned per concept the AxBench way: the
factor with the best mean overall score on the *select* instructions is
chosen, and the scores are reported on the held-out *test* instructions at
that factor.  Methods without a factor (prompting) carry NaN as their factor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SCORE_COLUMNS = ("concept_score", "instruction_score", "fluency_score")
STEERING_COLUMNS = ("concept_id", "instruction_id", "split", "factor", *SCORE_COLUMNS, "perplexity")
TABLE_COLUMNS = (
    "concept_id", "best_factor", "select_overall", *SCORE_COLUMNS, "overall", "perplexity", "n",
)

ArrayLike = Sequence[float] | np.ndarray | pd.Series


def harmonic_mean(concept: ArrayLike, instruction: ArrayLike, fluency: ArrayLike) -> np.ndarray:
    """Element-wise harmonic mean ``3 / (1/a + 1/b + 1/c)`` of three judge scores.

    Scores lie in [0, 2]; where any of the three is 0 the result is exactly 0.
    NaN inputs give NaN.  Works on scalars, arrays and Series alike.
    """
    a, b, c = (np.asarray(x, dtype=float) for x in (concept, instruction, fluency))
    any_zero = (a == 0) | (b == 0) | (c == 0)
    with np.errstate(divide="ignore"):
        result = 3.0 / (1.0 / a + 1.0 / b + 1.0 / c)
    return np.where(any_zero, 0.0, result)


def _with_overall(df: pd.DataFrame) -> pd.DataFrame:
    """Check the input columns and return a copy with the per-row ``overall`` score."""
    missing = [c for c in STEERING_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"steering frame is missing columns: {missing}")
    out = df.copy()
    out["factor"] = out["factor"].astype(float)
    out["overall"] = harmonic_mean(out["concept_score"], out["instruction_score"], out["fluency_score"])
    return out


def _best_factors(select: pd.DataFrame) -> pd.DataFrame:
    """Per concept, the factor with the highest mean overall score on ``select``.

    Ties go to the smaller factor; the NaN factor (no factor at all) is one
    group of its own and ranks after every real factor on a tie.  Returns
    columns ``concept_id, best_factor, select_overall``.
    """
    means = (
        select.groupby(["concept_id", "factor"], dropna=False)["overall"].mean().reset_index()
    )
    means = means.sort_values(
        ["concept_id", "overall", "factor"], ascending=[True, False, True], na_position="last"
    )
    best = means.drop_duplicates("concept_id", keep="first")
    return best.rename(columns={"factor": "best_factor", "overall": "select_overall"})


def _at_factor(rows: pd.DataFrame, factor: float) -> pd.DataFrame:
    """The rows whose factor equals ``factor``, a NaN factor matching NaN."""
    if np.isnan(factor):
        return rows[rows["factor"].isna()]
    return rows[rows["factor"] == factor]


def steering_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-concept steering scores at the factor chosen on the select split.

    ``df`` has one row per judged generation with columns ``concept_id,
    instruction_id, split`` ("select" | "test"), ``factor`` (NaN for methods
    without one), ``concept_score, instruction_score, fluency_score,
    perplexity``.  For each concept the factor with the best mean overall
    score on the select split is chosen (ties: the smaller factor), and the
    test rows at that factor are averaged.  ``overall`` is the mean of the
    per-row harmonic means, as in AxBench, not the harmonic mean of the means.

    Output columns: ``concept_id, best_factor, select_overall,
    concept_score, instruction_score, fluency_score, overall, perplexity, n``
    (``n``: test rows averaged).  A concept without select rows gets a NaN
    factor; one without test rows at its factor gets NaN means and ``n = 0``.
    """
    data = _with_overall(df)
    select = data[data["split"] == "select"]
    test = data[data["split"] == "test"]
    best = _best_factors(select).set_index("concept_id")

    rows = []
    for concept_id in sorted(data["concept_id"].unique()):
        factor = float(best["best_factor"].get(concept_id, np.nan))
        chosen = _at_factor(test[test["concept_id"] == concept_id], factor)
        row: dict[str, float | int] = {
            "concept_id": concept_id,
            "best_factor": factor,
            "select_overall": float(best["select_overall"].get(concept_id, np.nan)),
        }
        for column in (*SCORE_COLUMNS, "overall", "perplexity"):
            row[column] = float(chosen[column].mean()) if len(chosen) else float("nan")
        row["n"] = len(chosen)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def factor_curve(df: pd.DataFrame) -> pd.DataFrame:
    """Mean scores per ``(split, factor)`` over all concepts, for score-versus-factor plots.

    Means are taken over all generations of that split and factor (so every
    concept weighs by its number of rows).  Columns: ``split, factor,
    concept_score, instruction_score, fluency_score, overall, n``; a NaN
    factor forms its own group.
    """
    data = _with_overall(df)
    grouped = data.groupby(["split", "factor"], dropna=False)
    curve = grouped[[*SCORE_COLUMNS, "overall"]].mean()
    curve["n"] = grouped.size()
    return curve.reset_index().sort_values(["split", "factor"], na_position="last", ignore_index=True)


def judge_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Per concept, who judged it and how well its replies read: ``concept_id, judge_id, judge_proxy,
    unparsed_ratings, ratings`` (``ratings``: three per judged generation, every split and factor;
    ``unparsed_ratings``: those whose reply held no readable rating and were scored 0)."""
    grouped = df.groupby("concept_id")
    table = grouped.agg(judge_id=("judge_id", lambda ids: ", ".join(sorted(set(ids)))),
                        judge_proxy=("judge_proxy", "all"), unparsed_ratings=("unparsed_ratings", "sum"))
    table["ratings"] = 3 * grouped.size()
    return table.reset_index()
