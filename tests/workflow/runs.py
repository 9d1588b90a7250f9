"""How the workflow tests call the real Snakefile, copy a finished run, and read a dry run's plan."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    """A finished workflow run: the folder Snakemake ran in, its overrides, and its results folder."""

    workdir: Path
    overrides: list[str]
    results: Path


LOCAL_ONLY = Path(__file__).resolve().parent / "local_only"  # see local_only/scontrol


def snakemake_command(workdir: Path, overrides: list[str], *args: str, slurm: bool = False) -> tuple[list[str], dict]:
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": path if slurm else f"{LOCAL_ONLY}:{path}"}
    command = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--cores", "2", *args, "--config", f"overrides={json.dumps(overrides)}",
    ]
    return command, env


def snakemake(workdir: Path, overrides: list[str], *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    command, env = snakemake_command(workdir, overrides, *args)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def finished_run(workdir: Path, overrides: list[str], run_name: str) -> Run:
    """Run the workflow to the end in `workdir`; fail with Snakemake's output if it does not finish."""
    result = snakemake(workdir, overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Run(workdir, overrides, workdir / "results" / run_name)


def copy_run(run: Run, destination: Path) -> Run:
    """A copy of a finished run (results and Snakemake's metadata, timestamps kept) for a test that
    changes files or re-runs jobs, so the shared run stays as it finished."""
    shutil.copytree(run.workdir, destination, symlinks=True, dirs_exist_ok=True)
    return Run(destination, run.overrides, destination / run.results.relative_to(run.workdir))


def scheduled_jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job in a dry-run's output."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if match:
            found = re.search(r"wildcards: (.*)", block)
            wildcards = dict(p.split("=", 1) for p in found.group(1).split(", ")) if found else {}
            jobs.append((match.group(1), wildcards))
    return jobs
