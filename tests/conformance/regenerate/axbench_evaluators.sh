#!/usr/bin/env bash
# Regenerates tests/conformance/fixtures/axbench_evaluators.json: what AxBench's own evaluator code returns on
# fixed inputs: ROC AUC and the Youden threshold (AUCROCEvaluator), hard-negative accuracy
# (HardNegativeEvaluator), the judge's harmonic mean and per-factor means (LMJudgeEvaluator.compute_metrics),
# the factor chosen per concept (get_best_factors) and the imbalanced pool's draw
# (DatasetFactory.create_imbalance_eval_df). Nothing of AxBench is copied into this repository: its files are
# read from a clone at a pinned commit into a temporary folder and run there, in a throwaway venv.
#
#   tests/conformance/regenerate/axbench_evaluators.sh [CLONE]
#
# CLONE: an existing clone (bare or not) of https://github.com/stanfordnlp/axbench; without it the repository
# is cloned (bare) into the temporary folder. The venv (default /tmp/axb_eval_venv, override with
# AXB_EVAL_VENV) gets the versions of AxBench's uv.lock at that commit of what those files import: numpy,
# pandas, scikit-learn (and its scipy). AxBench asks for Python >= 3.12; the fixture records the Python and
# package versions that ran it. See axbench_evaluators.py for how the files are loaded without AxBench's
# package __init__ (which imports torch, transformers, pyvene, ...).
set -euo pipefail

URL=https://github.com/stanfordnlp/axbench
COMMIT=e9b8cd4783c983e350d78af76f3fb2b8b15fc7d3   # main, 2025-02-21, as axbench_judge.sh
FILES=(axbench/evaluators/evaluator.py axbench/evaluators/prompt_templates.py axbench/evaluators/lm_judge.py
       axbench/evaluators/aucroc.py axbench/evaluators/hard_negative.py axbench/scripts/evaluate.py
       axbench/utils/dataset.py axbench/utils/constants.py)
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$HERE/.." && pwd)/fixtures/axbench_evaluators.json
VENV=${AXB_EVAL_VENV:-/tmp/axb_eval_venv}

source "$HERE/reference.sh"
fetch_reference "$URL" "$COMMIT" "${1:-}" "${FILES[@]}"
throwaway_venv "$VENV" numpy==2.0.2 pandas==2.2.3 scikit-learn==1.5.2 scipy==1.13.1
"$VENV/bin/python" "$HERE/axbench_evaluators.py" --reference "$WORK/reference" --source "$URL@$COMMIT" --out "$OUT"
echo "wrote $OUT"
