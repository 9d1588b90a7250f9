"""Runs of the real Snakefile with faults struck into them, resumed the way docs/clusters.md says, and
the comparison of their artifacts with an uninterrupted run's.

A fault is a signal sent, while a job of one stage runs, either to that job's process (a crash, an
OOM kill, SLURM's time limit) or to Snakemake itself (its own OOM kill or a lost login node:
SIGKILL; a Ctrl-C-like stop or a scheduler's end of the allocation: SIGTERM). Each run strikes one
fault, the first of those still pending whose stage has a job alive, and every strike must land:
the job was alive when its signal went, and the run ended because of it. A job that ended before
its signal could go is not a strike; the fault stays pending for a later job of its stage, and a
run that finishes with faults pending fails the test.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open

from runs import snakemake_command

# what records time; and SAEBench's eval_id, a digest of the SAE file, whose metadata records how
# long its training took (the SAE file itself is compared, tensors and metadata but its timing)
TIMING_KEYS = {"seconds", "datetime_epoch_millis", "eval_id"}
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Fault:
    stage: str              # the `interpflow` sub-command whose job is running when the fault strikes
    signal: signal.Signals
    snakemake: bool = False  # the signal goes to Snakemake itself rather than to the job
    # how long after its job is seen the fault strikes (a random moment in this range): the job may
    # still be starting, or at work. A stage whose only job lasts about a second (the leaderboard)
    # needs a short range, or the job ends first and the fault cannot land.
    delay_s: tuple[float, float] = (0.2, 1.0)

    def __str__(self) -> str:
        return f"{self.signal.name} to {'Snakemake during' if self.snakemake else 'a job of'} {self.stage}"


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has ended: only its parent has not read its exit yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in "ZX"


def live_jobs(workdir: Path) -> dict[str, list[int]]:
    """Pids of the live `interpflow <stage>` processes running in `workdir`, by stage (one pass over
    /proc, so that a poll sees every stage at the same moment and a sub-second job is not missed)."""
    jobs: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0")]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        script = next((i for i, a in enumerate(argv[:2]) if a.endswith("/interpflow")), None)
        if script is None or cwd != str(workdir) or len(argv) <= script + 1:
            continue
        if alive(int(entry.name)):
            jobs.setdefault(argv[script + 1], []).append(int(entry.name))
    return jobs


def strike(fault: Fault, snakemake: subprocess.Popen, job: int) -> bool:
    """Send the fault's signal; False when its target had ended before it could go."""
    target = snakemake.pid if fault.snakemake else job
    if not alive(target):
        return False
    try:
        os.kill(target, fault.signal)
    except ProcessLookupError:
        return False
    return True


def wait_for_jobs_to_end(workdir: Path, timeout_s: float = RUN_TIMEOUT_S) -> None:
    """What docs/clusters.md asks after Snakemake itself was killed: its jobs, left running, end first."""
    deadline = time.monotonic() + timeout_s
    while live_jobs(workdir):
        assert time.monotonic() < deadline, f"jobs of the killed Snakemake still run after {timeout_s} s"
        time.sleep(0.2)


def run_until_a_fault(workdir: Path, overrides: list[str], pending: list[Fault], rng: random.Random,
                      log: Path, *extra: str) -> Fault | None:
    """The documented command (with --rerun-incomplete), with the first pending fault whose stage runs
    struck a moment after its job is seen (`Fault.delay_s`). Returns the fault that landed, None when
    the run finished without one."""
    command, env = snakemake_command(workdir, overrides, "--rerun-incomplete", *extra)
    with open(log, "w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        struck = None
        while process.poll() is None and struck is None:
            running = live_jobs(workdir)
            fault = next((f for f in pending if f.stage in running), None)
            if fault is not None:
                time.sleep(rng.uniform(*fault.delay_s))
                if strike(fault, process, running[fault.stage][0]):
                    struck = fault
            time.sleep(0.02)
        code = process.wait(timeout=RUN_TIMEOUT_S)
    text = log.read_text()
    if struck is None:
        assert code == 0, f"the run failed without a fault:\n{text[-3000:]}"
        return None
    if not struck.snakemake:
        assert code != 0 and "Error in rule" in text, f"{struck} did not land:\n{text[-3000:]}"
    elif struck.signal == signal.SIGTERM:
        # Snakemake stops starting jobs, lets the running ones finish, and exits with an error
        assert code != 0 and "Will exit after finishing currently running jobs" in text, (
            f"{struck} did not land:\n{text[-3000:]}")
    else:
        assert code == -signal.SIGKILL, f"{struck} did not land (exit {code}):\n{text[-3000:]}"
        assert list((workdir / ".snakemake/locks").glob("*.lock")), "a killed Snakemake leaves its lock"
        wait_for_jobs_to_end(workdir)
    return struck


def run_with_faults(workdir: Path, overrides: list[str], faults: list[Fault], rng: random.Random,
                    *extra: str) -> list[Fault]:
    """Run to the end, striking every fault in turn and resuming after each the documented way: after
    Snakemake itself was killed outright, `--unlock` with the same options first; then the same
    command with --rerun-incomplete. Fails unless every fault landed and the run then finished."""
    pending, struck = list(faults), []
    log = workdir.parent / f"{workdir.name}.snakemake.log"
    while pending:
        fault = run_until_a_fault(workdir, overrides, pending, rng, log, *extra)
        if fault is None:
            break
        struck.append(fault)
        pending.remove(fault)
        if fault.snakemake and fault.signal == signal.SIGKILL:
            command, env = snakemake_command(workdir, overrides, "--unlock", *extra)
            unlocked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            assert unlocked.returncode == 0, unlocked.stdout[-3000:] + unlocked.stderr[-3000:]
    assert not pending, f"struck {[str(f) for f in struck]}, but the run finished before {[str(f) for f in pending]}"
    if run_until_a_fault(workdir, overrides, [], rng, log, *extra) is not None:
        raise AssertionError("no fault was pending")
    return struck


def is_timing(key: str) -> bool:
    return key in TIMING_KEYS or key.endswith(("_seconds", "_s"))


def artifacts(results: Path) -> dict[str, Path]:
    skip = ("logs/", "benchmarks/")
    return {str(p.relative_to(results)): p for p in results.rglob("*")
            if p.is_file() and not str(p.relative_to(results)).startswith(skip)}


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not is_timing(k)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def assert_same(name: str, ours: Path, reference: Path) -> None:
    if name.endswith(".parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(ours), pd.read_parquet(reference), obj=name)
    elif name.endswith(".safetensors"):
        with safe_open(str(ours), "pt") as a, safe_open(str(reference), "pt") as b:
            assert sorted(a.keys()) == sorted(b.keys()), name
            for key in a.keys():
                assert torch.equal(a.get_tensor(key), b.get_tensor(key)), (name, key)
            assert without_timing(a.metadata() or {}) == without_timing(b.metadata() or {}), name
    elif name.endswith(".json"):
        assert without_timing(json.loads(ours.read_text())) == without_timing(json.loads(reference.read_text())), name
    elif name.endswith(".png"):
        assert ours.stat().st_size > 0, name
    else:
        assert ours.read_bytes() == reference.read_bytes(), name


def assert_same_artifacts(ours: Path, reference: Path) -> None:
    """Every artifact of one results folder equals the other's, and neither holds one the other lacks."""
    mine, theirs = artifacts(ours), artifacts(reference)
    assert sorted(mine) == sorted(theirs)
    for name, path in mine.items():
        assert_same(name, path, theirs[name])


def leftovers(workdir: Path) -> list[Path]:
    """Temporary files and training checkpoints nothing removed."""
    return [p for p in workdir.rglob("*") if p.name.endswith((".tmp", ".checkpoints"))]
