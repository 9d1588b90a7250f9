"""The workflow tests' shared runs: each experiment runs through the real Snakefile once per test
session, and every test reads that run (or a copy of it, when the test changes files)."""

from __future__ import annotations

import fcntl
import os

import pytest

from runs import Run, copy_run, finished_run


def shared_run(tmp_path_factory, experiment: str) -> Run:
    """`experiment` run once per session. Under pytest-xdist the workers' temp folders share a parent:
    the first worker to ask runs it there, holding a lock; another that asks meanwhile waits for it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    workdir = root / f"shared-{experiment}"
    with open(root / f"shared-{experiment}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (workdir / ".finished").exists():
            return Run(workdir, [f"experiment={experiment}"], workdir / "results" / experiment)
        workdir.mkdir(exist_ok=True)
        run = finished_run(workdir, [f"experiment={experiment}"], experiment)
        (workdir / ".finished").touch()
        return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Run:
    """experiment=tiny: a tiny random Llama, 3 demo concepts in 2 shards, 4 detectors and prompting."""
    return shared_run(tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def tiny_full_run(tmp_path_factory) -> Run:
    """experiment=tiny_full: every registered method on the tiny Llama, 2 concepts in 1 shard."""
    return shared_run(tmp_path_factory, "tiny_full")


@pytest.fixture(scope="session")
def interpbench_tiny_run(tmp_path_factory) -> Run:
    """experiment=interpbench_tiny: two one-layer Tracr tasks, their SIIT models, all five discovery methods."""
    return shared_run(tmp_path_factory, "interpbench_tiny")


@pytest.fixture()
def tiny_run_copy(tiny_run, tmp_path) -> Run:
    """A private copy of the tiny run, for a test that edits its files."""
    return copy_run(tiny_run, tmp_path / "tiny")
