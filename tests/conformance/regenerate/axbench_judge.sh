#!/usr/bin/env bash
# Regenerates tests/conformance/fixtures/axbench_judge.json: the ratings AxBench's own LLM-judge
# evaluator reads from fixed judge replies. Nothing of AxBench is copied into this repository: its
# evaluator files are read from a clone at a pinned commit into a temporary folder and run there, in a
# throwaway venv.
#
#   tests/conformance/regenerate/axbench_judge.sh [CLONE]
#
# CLONE: an existing clone (bare or not) of https://github.com/stanfordnlp/axbench; without it the
# repository is cloned (bare) into the temporary folder. Only axbench/evaluators/{evaluator,
# prompt_templates,lm_judge}.py are taken: AxBench's package __init__ imports all of AxBench (torch,
# pyvene, transformers, ...), so axbench_judge.py loads lm_judge.py as a module of a bare package made
# from that folder, without running the __init__; lm_judge.py itself imports only pandas, numpy,
# asyncio, logging and those two sibling files. The venv (default /tmp/axb_venv, override with
# AXB_VENV) gets numpy and pandas. AxBench asks for Python >= 3.12; the rating parse uses nothing
# newer, and the fixture records the Python that ran it.
set -euo pipefail

URL=https://github.com/stanfordnlp/axbench
COMMIT=e9b8cd4783c983e350d78af76f3fb2b8b15fc7d3   # main, 2025-02-21 (lm_judge.py last changed 2024-11-20)
FILES=(axbench/evaluators/evaluator.py axbench/evaluators/prompt_templates.py axbench/evaluators/lm_judge.py)
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$HERE/.." && pwd)/fixtures/axbench_judge.json
VENV=${AXB_VENV:-/tmp/axb_venv}

source "$HERE/reference.sh"
fetch_reference "$URL" "$COMMIT" "${1:-}" "${FILES[@]}"
throwaway_venv "$VENV" numpy pandas
"$VENV/bin/python" "$HERE/axbench_judge.py" --evaluators "$WORK/reference/axbench/evaluators" \
    --source "$URL@$COMMIT" --out "$OUT"
echo "wrote $OUT"
