#!/usr/bin/env bash
# Regenerates tests/conformance/fixtures/interpbench_roc.json: the AUROCs that InterpBench's own ROC
# code computes on fixed point sets. Nothing of InterpBench is copied into this repository: its files
# are read from a clone at a pinned commit into a temporary folder and run there, in a throwaway venv.
#
#   tests/conformance/regenerate/interpbench_roc.sh [CLONE]
#
# CLONE: an existing clone (bare or not) of https://github.com/FlyingPumba/circuits-benchmark;
# without it the repository is cloned (bare) into the temporary folder. The pinned commit is the head
# of its branch cybershiptrooper/new_experiments, where interp_utils/circuit_discovery/pessimistic_roc.py
# and the comparison notebook (notebooks/circuit_discovery_comparison.ipynb) that calls it live.
# The venv (default /tmp/ib_venv, override with IB_VENV) gets only what those files import: numpy,
# pandas (the notebook) and matplotlib (pessimistic_roc.py's plot function).
set -euo pipefail

URL=https://github.com/FlyingPumba/circuits-benchmark
COMMIT=a93a3b473c051f57d8193d0dced0d1d1b4a560fd   # cybershiptrooper/new_experiments, 2024-09-02
FILES=(interp_utils/__init__.py interp_utils/circuit_discovery/__init__.py
       interp_utils/circuit_discovery/pessimistic_roc.py notebooks/circuit_discovery_comparison.ipynb)
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$HERE/.." && pwd)/fixtures/interpbench_roc.json
VENV=${IB_VENV:-/tmp/ib_venv}

source "$HERE/reference.sh"
fetch_reference "$URL" "$COMMIT" "${1:-}" "${FILES[@]}"
throwaway_venv "$VENV" numpy pandas matplotlib
MPLBACKEND=Agg "$VENV/bin/python" "$HERE/interpbench_roc.py" --reference "$WORK/reference" \
    --source "$URL@$COMMIT" --out "$OUT"
echo "wrote $OUT"
