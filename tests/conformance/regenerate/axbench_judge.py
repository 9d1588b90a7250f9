"""Runs AxBench's LLM-judge rating parse on fixed judge replies and writes what it returns (see
axbench_judge.sh, which prepares the throwaway venv and the reference folder; run it, not this file).

The reference is `LMJudgeEvaluator._get_ratings_from_completions` of axbench/evaluators/lm_judge.py,
the function AxBench's steering evaluation turns every judge reply into a 0-2 rating with (it reads
what follows the last "Rating:", checks the range, and falls back to its DEFAULT_RATING of 0). Its
package's __init__ imports all of AxBench, so lm_judge.py is loaded as a module of a bare package made
from the evaluators folder, without that __init__. Whether a rating is AxBench's fallback rather than
a rating it read is recorded too (`fallback`): the function logs a warning on every fallback path.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import sys
import types
from pathlib import Path

CUT_EXPLANATION = "The fragment mentions the ocean twice, but the second mention is"

REPLIES: dict[str, str | None] = {
    "final_brackets": "The concept is woven in naturally.\nRating: [[2]]",
    "brackets_only_line": "Rating: [[1]]",
    "zero": "Nothing about the ocean.\nRating: [[0]]",
    "plain_number": "Rating: 2",
    "plain_number_with_dot": "Rating: 2.",
    "single_brackets": "Rating: [2]",
    "asterisks": "Fluent throughout.\nRating: **1**",
    "quoted": 'Rating: "0"',
    "single_quoted": "Rating: '1'",
    "spaces_in_brackets": "Rating: [[ 1 ]]",
    "brackets_then_dot": "Rating: [[2]].",
    "ellipsis": "Rating: 1...",
    "decimal_half": "Rating: [[1.5]]",
    "decimal_quarter": "Rating: 1.25",
    "decimal_leading_dot": "Rating: .5",
    "decimal_out_of_range": "Rating: [[2.5]]",
    "exponent": "Rating: 1e0",
    "plus_sign": "Rating: +1",
    "negative": "Rating: [[-1]]",
    "negative_zero": "Rating: [[-0]]",
    "above_scale": "Rating: [[3]]",
    "not_a_number_word": "Rating: two",
    "not_applicable": "Rating: n/a",
    "nan": "Rating: nan",
    "infinity": "Rating: inf",
    "fraction": "Rating: 1/2",
    "out_of": "Rating: 2 out of 2",
    "trailing_words": "Rating: [[2]] - the concept is clearly present",
    "two_ratings_on_one_line": "Rating: [[1]] or [[2]]",
    "corrected_rating": "Rating: [[1]]\nOn a second look:\nRating: [[2]]",
    "rating_on_next_line": "Explanation: fine.\nRating:\n2",
    "later_brackets": "Rating: 2\n\nNote: [[0]] would mean absent.",
    "brackets_without_rating_word": "I would rate this [[1]] overall.",
    "lowercase_rating_word": "rating: 2",
    "uppercase_rating_word": "RATING: 2",
    "cut_before_rating": CUT_EXPLANATION,
    "cut_after_rating_word": CUT_EXPLANATION + " awkward.\nRating:",
    "cut_inside_brackets": CUT_EXPLANATION + " awkward.\nRating: [[",
    "cut_after_digit": CUT_EXPLANATION + " awkward.\nRating: [[2",
    "cut_after_decimal_point": "Rating: 1.",
    "windows_line_end": "Rating: 1\r\nDone.",
    "arabic_indic_digit": "Rating: \u0661",
    "garbage": "\u00bf?%$ ]]][[[ ::: Rating?",
    "only_whitespace": "   \n ",
    "empty": "",
    "none": None,
}


def load_lm_judge(evaluators: Path):
    """lm_judge.py as `axbench_evaluators.lm_judge`: a bare package over the folder, its __init__ not run."""
    package = types.ModuleType("axbench_evaluators")
    package.__path__ = [str(evaluators)]
    sys.modules["axbench_evaluators"] = package
    return importlib.import_module("axbench_evaluators.lm_judge")


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluators", type=Path, required=True, help="axbench/evaluators of the pinned commit")
    parser.add_argument("--source", required=True, help="URL@commit, recorded in the fixture")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lm_judge = load_lm_judge(args.evaluators)
    evaluator = lm_judge.LMJudgeEvaluator("fixture")
    warnings = Warnings()
    lm_judge.logger.addHandler(warnings)
    cases = []
    for name, reply in REPLIES.items():
        before = warnings.count
        [rating] = evaluator._get_ratings_from_completions([reply])
        cases.append({"name": name, "reply": reply, "rating": float(rating), "fallback": warnings.count > before})
    args.out.write_text(json.dumps({
        "source": args.source,
        "reference": "axbench/evaluators/lm_judge.py: LMJudgeEvaluator._get_ratings_from_completions "
                     "(min_rating 0, max_rating 2), DEFAULT_RATING on every fallback",
        "python": platform.python_version(),
        "regenerate": "tests/conformance/regenerate/axbench_judge.sh [CLONE]",
        "fallback": "true where AxBench's rating is its DEFAULT_RATING because it read none (it logs a warning)",
        "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
