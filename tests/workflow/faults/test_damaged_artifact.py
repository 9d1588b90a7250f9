"""A damaged artifact: the job that reads it stops with a message giving the command that rebuilds
it, and that command, run for real, rebuilds it and what was made from it. (Deleting it would not:
Snakemake 9 rebuilds a missing intermediate file only when something after it must run.)"""

from __future__ import annotations

import re

import pytest

from faulty_runs import assert_same_artifacts
from runs import snakemake

pytestmark = pytest.mark.workflow

# read by the leaderboard, the one job after it: a rebuild costs two small jobs
DAMAGED = "eval/detection/tiny_llama/L2/diffmean.parquet"


def test_the_damaged_artifact_message_gives_a_command_that_rebuilds_it(tiny_run_copy, tiny_run):
    run = tiny_run_copy
    damaged = run.results / DAMAGED
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])  # cut short, as a full disk would leave it

    failed = snakemake(run.workdir, run.overrides)
    assert failed.returncode != 0
    messages = [line for log in (run.results / "logs").rglob("*.log") for line in log.read_text().splitlines()
                if "damaged" in line]
    assert len(messages) == 1, messages
    option = re.search(r"`(--forcerun) ([^`]+)`", messages[0])
    assert option, messages[0]
    assert option.group(2) == f"results/tiny/{DAMAGED}"  # the file the command needs, as the error names it

    rebuilt = snakemake(run.workdir, run.overrides, option.group(1), option.group(2))
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    output = rebuilt.stdout + rebuilt.stderr
    assert re.search(r"\nevaluate_detection +1\n", output) and re.search(r"\nleaderboard +1\n", output), output[-3000:]
    assert_same_artifacts(run.results, tiny_run.results)
