"""benchmarks/figures_tables.py: the docs' measured-figures page, written from a finished run's own files."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from runs import REPO

pytestmark = pytest.mark.workflow


def test_figures_page_holds_the_runs_leaderboard_and_wall_times(tiny_run, tmp_path):
    out = tmp_path / "measured.md"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "figures_tables.py"), str(tiny_run.results),
                             "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    page = out.read_text()
    assert f"{os.cpu_count()} logical cores" in page and "## `tiny`" in page
    leaderboard = (tiny_run.results / "leaderboard.md").read_text()
    table_rows = [line for line in leaderboard.splitlines() if line.startswith("|")]
    assert table_rows and all(row in page for row in table_rows)  # the run's own numbers, not retyped
    methods = pd.read_csv(tiny_run.results / "leaderboard.csv")["method"]
    time_section = page.split("### Where the time went", 1)[1]
    assert all(f"| {method} " in time_section for method in methods)
