"""Runs AxBench's own evaluator code on fixed inputs and writes what it returns (see axbench_evaluators.sh,
which prepares the throwaway venv and the reference folder; run it, not this file).

References, all at the pinned commit:
  detection  axbench/evaluators/aucroc.py AUCROCEvaluator.compute_metrics (roc_auc, optimal_threshold) and
             axbench/evaluators/hard_negative.py HardNegativeEvaluator.compute_metrics (macro_avg_accuracy;
             {} when it reports none), on one concept's rows of positives, negatives and hard negatives.
  steering   axbench/evaluators/lm_judge.py LMJudgeEvaluator.compute_metrics (its per-generation harmonic
             mean and per-factor means) with fixed ratings in place of the judge's API calls (its
             `_get_all_ratings_from_data` is replaced on the instance; everything after it is AxBench's),
             then axbench/scripts/evaluate.py get_best_factors (the factor chosen per concept).
  pool       axbench/utils/dataset.py DatasetFactory.create_imbalance_eval_df (the imbalanced pool drawn
             from the evaluation file's negatives) on a fixed evaluation file.
evaluate.py and dataset.py import all of AxBench (torch, transformers, pyvene, ...), so those two functions
are taken from the files' syntax trees and run alone, with the names they use (numpy; EMPTY_CONCEPT from
axbench/utils/constants.py) supplied; the evaluators folder is loaded as a bare package, as in
axbench_judge.py.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import logging
import platform
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

MODEL = "Method"  # AxBench's evaluators read the column f"{model_name}_max_act"


def load_evaluators(evaluators: Path) -> dict[str, types.ModuleType]:
    package = types.ModuleType("axbench_evaluators")
    package.__path__ = [str(evaluators)]
    sys.modules["axbench_evaluators"] = package
    return {name: importlib.import_module(f"axbench_evaluators.{name}") for name in ("aucroc", "hard_negative", "lm_judge")}


def load_module(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_function(path: Path, name: str, namespace: dict, class_name: str | None = None):
    """The function `name` (a method of `class_name`) of the file at `path`, compiled alone in `namespace`."""
    scope = ast.parse(path.read_text()).body
    if class_name is not None:
        scope = next(node for node in scope if isinstance(node, ast.ClassDef) and node.name == class_name).body
    node = next(node for node in scope if isinstance(node, ast.FunctionDef) and node.name == name)
    exec(compile(ast.Module(body=[node], type_ignores=[]), f"{path}:{name}", "exec"), namespace)
    return namespace[name]


# --- detection ------------------------------------------------------------------------------------

def detection_inputs() -> dict[str, dict[str, list[float]]]:
    """Per case, the max activations of positives, negatives and hard negatives: random sets rounded so
    that ties occur, and hand cases at the edges (separated, inverted, constant, no hard negatives)."""
    rng = np.random.default_rng(2025)
    cases = {}
    for n_pos, n_neg, n_hard, digits, shift in ((36, 36, 5, 6, 1.0), (18, 18, 6, 2, 0.8), (12, 12, 4, 1, 0.5),
                                                (5, 40, 3, 3, 1.5), (40, 5, 2, 3, 0.2), (36, 36, 5, 0, 1.0)):
        cases[f"random_{n_pos}_{n_neg}_{n_hard}_d{digits}"] = {
            "positive": rng.normal(shift, 1, n_pos).round(digits).tolist(),
            "negative": rng.normal(0, 1, n_neg).round(digits).tolist(),
            "hard negative": rng.normal(shift / 2, 1, n_hard).round(digits).tolist(),
        }
    cases.update({
        "separated": {"positive": [3.0, 4.0, 5.0], "negative": [0.0, 1.0, 2.0], "hard negative": [2.5, 4.5]},
        "inverted": {"positive": [0.0, 1.0], "negative": [2.0, 3.0], "hard negative": [1.0]},
        "constant": {"positive": [1.0, 1.0], "negative": [1.0, 1.0], "hard negative": [1.0]},
        "integer_ties": {"positive": [3, 2, 2, 1, 3, 0], "negative": [0, 1, 1, 2, 0, 0], "hard negative": [2, 1, 3]},
        "negative_scores": {"positive": [-1.5, -0.5, -2.0], "negative": [-3.0, -2.0, -2.5], "hard negative": [-0.1, -2.2]},
        "hard_at_the_threshold": {"positive": [0.9, 0.6], "negative": [0.1, 0.7], "hard negative": [0.9, 0.6, 0.2]},
        "no_hard_negatives": {"positive": [0.9, 0.4], "negative": [0.1, 0.5], "hard negative": []},
        "hard_above_everything": {"positive": [0.5, 0.6], "negative": [0.1, 0.2], "hard negative": [9.0]},
    })
    return cases


def detection(modules: dict, cases: dict) -> list[dict]:
    results = []
    for name, scores in cases.items():
        data = pd.DataFrame([{"category": category, f"{MODEL}_max_act": float(score)}
                             for category, values in scores.items() for score in values])
        roc = modules["aucroc"].AUCROCEvaluator(MODEL).compute_metrics(data)
        hard = modules["hard_negative"].HardNegativeEvaluator(MODEL).compute_metrics(data)
        threshold = roc["optimal_threshold"]
        results.append({"name": name, **{k: [float(s) for s in v] for k, v in scores.items()},
                        "roc_auc": roc["roc_auc"],
                        "optimal_threshold": None if np.isinf(threshold) else threshold,
                        "hard_negative_accuracy": hard.get("macro_avg_accuracy")})
    return results


# --- steering -------------------------------------------------------------------------------------

FACTORS = [2.0, 0.5, 1.0, 0.2]  # rows in this order; AxBench groups by factor


def steering_inputs() -> dict[str, list[dict]]:
    """Per concept, ratings (concept, instruction, fluency) of 4 generations at each factor: random ones on
    AxBench's 0-2 scale (decimals too: AxBench reads them), and hand cases for ties and all-zero."""
    rng = np.random.default_rng(7)
    values = [0.0, 0.5, 1.0, 1.5, 2.0]
    concepts = {}
    for concept in range(6):
        concepts[f"random_{concept}"] = [
            {"factor": factor, "input_id": i, "ratings": rng.choice(values, 3, p=[0.2, 0.1, 0.3, 0.1, 0.3]).tolist()}
            for factor in FACTORS for i in range(4)]
    same = [[2.0, 1.0, 2.0], [1.0, 1.0, 1.0], [0.0, 2.0, 2.0], [2.0, 2.0, 1.5]]
    concepts["tie_between_two_factors"] = [
        {"factor": factor, "input_id": i, "ratings": same[i] if factor in (1.0, 0.5) else [1.0, 1.0, 0.0]}
        for factor in FACTORS for i in range(4)]
    concepts["all_zero"] = [{"factor": factor, "input_id": i, "ratings": [0.0, 2.0, 2.0]}
                            for factor in FACTORS for i in range(4)]
    return concepts


def steering(modules: dict, get_best_factors, concepts: dict) -> list[dict]:
    results, aggregated = [], []
    for concept_id, (name, rows) in enumerate(concepts.items()):
        data = pd.DataFrame([{"factor": row["factor"], "input_id": row["input_id"]} for row in rows])
        ratings = [row["ratings"] for row in rows]
        evaluator = modules["lm_judge"].LMJudgeEvaluator(MODEL, concept_id=concept_id)
        evaluator._get_all_ratings_from_data = lambda data, column, ratings=ratings: (
            *([(None, r[axis]) for r in ratings] for axis in range(3)), [], [], [])
        metrics = evaluator.compute_metrics(data)
        aggregated.append({"concept_id": concept_id, "results": {"LMJudgeEvaluator": {MODEL: metrics}}})
        results.append({"name": name, "concept_id": concept_id, "rows": rows,
                        "harmonic_means": [float(r) for r in metrics["raw_aggregated_ratings"]],
                        "factors": [float(f) for f in metrics["factor"]],
                        "factor_means": [float(r) for r in metrics["lm_judge_rating"]]})
    best = get_best_factors(aggregated)
    for result in results:
        result["best_factor"] = float(best[result["concept_id"]][MODEL])
    return results


# --- the imbalanced pool --------------------------------------------------------------------------

def evaluation_file() -> pd.DataFrame:
    """An AxBench-format evaluation file: 12 concepts of 5 positives, 45 negatives and 2 hard negatives."""
    rows = [{"input": f"c{c} {category} {i}", "output": f"answer {c}.{category}.{i}", "category": category,
             "concept_genre": "text", "concept_id": c}
            for c in range(12) for category, n in (("positive", 5), ("negative", 45), ("hard negative", 2))
            for i in range(n)]
    return pd.DataFrame(rows)


def pools(create_imbalance_eval_df, file: pd.DataFrame) -> list[dict]:
    results = []
    for seed, subset_n, factor in ((42, 5, None), (42, 5, 10), (0, 5, 100), (1, 5, 1), (42, 3, 7)):
        factory = types.SimpleNamespace(pregenerated_inference_df=file, seed=seed, logger=logging.getLogger("pool"))
        pool = create_imbalance_eval_df(factory, subset_n, factor=factor)
        results.append({"seed": seed, "subset_n": subset_n, "factor": factor, "inputs": pool["input"].tolist()})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=Path, required=True, help="the files of the pinned commit")
    parser.add_argument("--source", required=True, help="URL@commit, recorded in the fixture")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    axbench = args.reference / "axbench"
    logging.disable(logging.WARNING)  # AxBench's evaluators warn on every concept
    modules = load_evaluators(axbench / "evaluators")
    get_best_factors = load_function(axbench / "scripts/evaluate.py", "get_best_factors", {"np": np})
    constants = load_module(axbench / "utils/constants.py")
    create_imbalance_eval_df = load_function(axbench / "utils/dataset.py", "create_imbalance_eval_df",
                                             {"EMPTY_CONCEPT": constants.EMPTY_CONCEPT}, class_name="DatasetFactory")
    file = evaluation_file()
    args.out.write_text(json.dumps({
        "source": args.source,
        "python": platform.python_version(),
        "packages": {"numpy": np.__version__, "pandas": pd.__version__, "scikit-learn": sklearn.__version__},
        "regenerate": "tests/conformance/regenerate/axbench_evaluators.sh [CLONE]",
        "detection": {
            "reference": "axbench/evaluators/aucroc.py AUCROCEvaluator and hard_negative.py HardNegativeEvaluator "
                         "compute_metrics; optimal_threshold is on AxBench's min-max normalised scale (null: "
                         "infinite), hard_negative_accuracy null where AxBench returns {}",
            "cases": detection(modules, detection_inputs()),
        },
        "steering": {
            "reference": "axbench/evaluators/lm_judge.py LMJudgeEvaluator.compute_metrics on fixed ratings "
                         "(concept, instruction, fluency), then axbench/scripts/evaluate.py get_best_factors",
            "concepts": steering(modules, get_best_factors, steering_inputs()),
        },
        "pool": {
            "reference": "axbench/utils/dataset.py DatasetFactory.create_imbalance_eval_df(subset_n, factor) with "
                         "the factory's seed; `inputs`: the drawn rows' input, in the drawn order",
            "file": file.to_dict(orient="list"),
            "draws": pools(create_imbalance_eval_df, file),
        },
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
