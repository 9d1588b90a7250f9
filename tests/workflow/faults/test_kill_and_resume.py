"""Kill anything, lose nothing: experiment=tiny runs with one job of each stage kind killed part-way
(SIGKILL or SIGTERM, as a crash, an OOM kill or a SLURM time limit would), Snakemake started again
after each kill with --rerun-incomplete, and the finished run compared with the uninterrupted one.
The API half judges the same run through an OpenAI-compatible server (the stub, which counts what
it is asked), kills judge jobs mid-way, and checks that no answered question is asked again.

Every artifact must equal the uninterrupted run's: tables by content, tensors by value, JSON and
text exactly. Only what records time differs (wall times, tokens per second), and plots are compared
by existence. No temporary file may be left anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open

from interpflow.providers.stub_server import StubChatServer
from runs import copy_run, snakemake_command

pytestmark = pytest.mark.workflow

# (stage sub-command, signal): one of each stage kind of experiment=tiny
KILLS = [
    ("prepare-model", signal.SIGKILL),
    ("train-data", signal.SIGTERM),
    ("cache-activations", signal.SIGKILL),
    ("train", signal.SIGTERM),
    ("detect", signal.SIGKILL),
    ("steer", signal.SIGTERM),
    ("judge", signal.SIGKILL),
    ("leaderboard", signal.SIGTERM),
]
TIMING_KEYS = {"seconds", "datetime_epoch_millis"}


def is_timing(key: str) -> bool:
    return key in TIMING_KEYS or key.endswith(("_seconds", "_s"))


def job_processes(workdir: Path, stage: str) -> list[int]:
    """Pids of `interpflow <stage>` processes running in `workdir` (not the shell around them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if cwd == str(workdir) and any(w.endswith("/interpflow") for w in words[:2]) and stage in words:
            pids.append(int(entry.name))
    return pids


def run_and_kill(workdir: Path, overrides: list[str], pending: dict[str, signal.Signals], rng: random.Random,
                 *extra: str) -> str | None:
    """Start Snakemake; the first job of a `pending` stage that is still alive after a random delay is
    killed with its signal. Returns that stage (None when Snakemake finished without a kill). After a
    kill Snakemake is left to stop by itself: it finishes the jobs it is running, then exits."""
    command, env = snakemake_command(workdir, overrides, "--rerun-incomplete", *extra)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = None
    while process.poll() is None and killed is None:
        for stage, sig in pending.items():
            pids = job_processes(workdir, stage)
            if not pids:
                continue
            time.sleep(rng.uniform(0.2, 1.0))
            for pid in pids:
                try:
                    os.kill(pid, sig)
                    killed = stage
                except ProcessLookupError:
                    pass  # it finished first
            break
        time.sleep(0.02)
    process.wait(timeout=900)
    return killed


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


def test_killed_jobs_resume_to_the_uninterrupted_result(tiny_run, tmp_path):
    workdir = tmp_path / "faulty"
    workdir.mkdir()
    rng = random.Random(0)
    pending, killed = dict(KILLS), []
    while pending:
        stage = run_and_kill(workdir, tiny_run.overrides, pending, rng)
        if stage is None:
            break  # the run finished: the stages still pending had no job alive long enough
        killed.append(stage)
        del pending[stage]
    assert len(killed) >= 5, f"killed only {killed}"
    print("killed:", killed)
    command, env = snakemake_command(workdir, tiny_run.overrides, "--rerun-incomplete")
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

    ours, reference = artifacts(workdir / "results/tiny"), artifacts(tiny_run.results)
    assert sorted(ours) == sorted(reference)
    for name, path in ours.items():
        assert_same(name, path, reference[name])
    leftovers = [p for p in workdir.rglob("*.tmp")] + [p for p in workdir.rglob("*.checkpoints")]
    assert not leftovers, leftovers


def rating_by_prompt(messages: list[dict]) -> str:
    """The same rating for the same question, whichever run or job asks it."""
    return f"Judged.\nRating: [[{hashlib.sha256(messages[-1]['content'].encode()).digest()[0] % 3}]]"


def test_killed_api_judge_jobs_resume_without_asking_again(tiny_run, tmp_path, monkeypatch):
    """Judge jobs calling an API are killed mid-way (SIGKILL, then SIGTERM): the answers they had got
    are in the cache, so the re-run asks only what was never answered (at most the requests in flight
    at each kill) and the judged tables equal an uninterrupted run's. One job at a time (--cores 1),
    so two jobs never race to ask the same question."""
    monkeypatch.setenv("INTERPFLOW_FAULT_KEY", "local")
    concurrency, rng = 2, random.Random(1)
    with StubChatServer(reply=rating_by_prompt, delay_s=0.05) as stub:
        overrides = [*tiny_run.overrides, "judge=openai", f"judge.base_url={stub.base_url}",
                     "judge.api_key_env=INTERPFLOW_FAULT_KEY", f"judge.concurrency={concurrency}"]
        reference = copy_run(tiny_run, tmp_path / "reference")
        command, env = snakemake_command(reference.workdir, overrides, "--cores", "1")
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        asked = len(stub.prompts)
        assert asked == len(set(stub.prompts)) > 0  # each question once, whichever job shares it

        faulty = copy_run(tiny_run, tmp_path / "faulty")
        killed = [run_and_kill(faulty.workdir, overrides, {"judge": sig}, rng, "--cores", "1")
                  for sig in (signal.SIGKILL, signal.SIGTERM)]
        assert killed == ["judge", "judge"], killed
        command, env = snakemake_command(faulty.workdir, overrides, "--rerun-incomplete", "--cores", "1")
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        again = stub.prompts[asked:]

    asked_twice = len(again) - len(set(again))
    print(f"questions: {asked}; the killed and resumed run asked {len(again)}, {asked_twice} of them twice")
    assert set(again) == set(stub.prompts[:asked])
    assert asked_twice <= 2 * concurrency, asked_twice  # only what was in flight when each job died
    ours, theirs = artifacts(faulty.results), artifacts(reference.results)
    assert sorted(ours) == sorted(theirs)
    judged = [n for n in ours if n.startswith(("judged/", "eval/")) and n.endswith(".parquet")]
    assert judged
    for name in judged:  # the usage JSON differs by design: the resumed run read part of it from the cache
        assert_same(name, ours[name], theirs[name])
    assert not list(faulty.workdir.rglob("*.tmp"))
