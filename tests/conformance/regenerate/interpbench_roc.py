"""Runs InterpBench's ROC code on fixed point sets and writes what it returns (see interpbench_roc.sh,
which prepares the throwaway venv and the reference folder; run it, not this file).

The AUROC is the one InterpBench's comparison notebook reports: its `get_ROCs` (cell code executed
as written, from the notebook at the pinned commit) on a table with one run per point set, which
calls `make_monotonically_increasing` and `pessimistic_auc` from `pessimistic_roc.py`. The curve is
`make_monotonically_increasing`'s points with (0, 0) and (1, 1) added, as the notebook's `get_xy`
does. An undefined rate is `null` in the fixture and InterpBench's own "N/A" string here.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

NA = "N/A"


def point_sets() -> dict[str, tuple[list, list]]:
    """(FPRs, TPRs) per case; None is an undefined rate."""
    rng = np.random.default_rng(28)
    # a sweep as a method gives one: 40 circuits of growing size over 25 true and 740 false edges,
    # counts rounded as rates are, with TPR dips where a threshold swaps edges
    fp = np.sort(rng.integers(0, 741, size=40))
    tp = np.clip(np.sort(rng.integers(0, 26, size=40)) + rng.integers(-2, 3, size=40), 0, 25)
    scattered = rng.integers(0, 11, size=(2, 30)) / 10  # many ties in FPR and in TPR
    return {
        "single_point": ([0.2], [0.8]),
        "tpr_drop": ([0.1, 0.3, 0.5, 0.6, 0.9], [0.5, 0.4, 0.7, 0.65, 0.9]),
        "tpr_drop_below_several": ([0.1, 0.2, 0.3, 0.4], [0.6, 0.5, 0.55, 0.7]),
        "undefined_rates": ([None, 0.25, 0.5, None, 0.75], [0.5, None, 0.75, 1.0, 0.8]),
        "no_negatives": ([None, None, None], [0.0, 0.5, 1.0]),
        "no_positives": ([0.0, 0.3, 0.8], [None, None, None]),
        "duplicate_fprs": ([0.2, 0.2, 0.2, 0.5, 0.5], [0.3, 0.6, 0.1, 0.6, 0.9]),
        "points_at_the_ends": ([0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 0.9, 1.0]),
        "full_circuit_only": ([1.0], [1.0]),
        "perfect": ([0.0, 0.0, 1.0], [0.4, 1.0, 1.0]),
        "reversed": ([0.5, 1.0, 1.0], [0.0, 0.0, 1.0]),
        "unsorted_monotone": ([0.6, 0.1, 0.3], [0.9, 0.2, 0.5]),
        "sweep_40_circuits": ((fp / 740).tolist(), (tp / 25).tolist()),
        "scattered_30_points": (scattered[0].tolist(), scattered[1].tolist()),
    }


def as_reference(values: list) -> list:
    return [NA if v is None else float(v) for v in values]


def notebook_get_rocs(reference: Path):
    """The notebook cell that defines `get_ROCs`, executed as written."""
    notebook = json.loads((reference / "notebooks/circuit_discovery_comparison.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    (cell,) = [c for c in cells if "def get_ROCs(" in c]
    namespace = {"pd": pd}
    exec(compile(cell, "circuit_discovery_comparison.ipynb:get_ROCs", "exec"), namespace)
    return namespace["get_ROCs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=Path, required=True, help="folder holding the pinned commit's files")
    parser.add_argument("--source", required=True, help="URL@commit, recorded in the fixture")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference))
    from interp_utils.circuit_discovery.pessimistic_roc import make_monotonically_increasing

    get_rocs = notebook_get_rocs(args.reference)
    cases = point_sets()
    rows = []
    for name, (fpr, tpr) in cases.items():
        for i, (x, y) in enumerate(zip(as_reference(fpr), as_reference(tpr))):
            rows.append({"run": name, "threshold": float(len(fpr) - i), "node_fpr": x, "node_tpr": y,
                         "edge_fpr": x, "edge_tpr": y})
    rocs = get_rocs(pd.DataFrame(rows), "eap")
    fixtures = []
    for name, (fpr, tpr) in cases.items():
        xs, ys, _, _ = make_monotonically_increasing(as_reference(fpr), as_reference(tpr))
        fixtures.append({"name": name, "fpr": fpr, "tpr": tpr, "auroc": float(rocs[name]["edge"]),
                         "curve_fpr": [0.0, *map(float, xs), 1.0], "curve_tpr": [0.0, *map(float, ys), 1.0]})
        assert rocs[name]["node"] == rocs[name]["edge"]
    args.out.write_text(json.dumps({
        "source": args.source,
        "reference": "interp_utils/circuit_discovery/pessimistic_roc.py (make_monotonically_increasing, "
                     "pessimistic_auc) through get_ROCs of notebooks/circuit_discovery_comparison.ipynb",
        "regenerate": "tests/conformance/regenerate/interpbench_roc.sh [CLONE]",
        "null": "an undefined rate, passed to the reference as its 'N/A'",
        "cases": fixtures,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
