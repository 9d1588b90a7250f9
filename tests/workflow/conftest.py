"""The workflow tests' shared runs: each experiment runs through the real Snakefile once per test
session, and every test reads that run (or a copy of it, when the test changes files). The runs the
collected tests need start in the background when collection ends (shared_runs.py)."""

from __future__ import annotations

import pytest

from runs import Run, copy_run
from shared_runs import SHARED_RUNS, SharedRuns

SHARED = pytest.StashKey[SharedRuns]()


def pytest_collection_finish(session: pytest.Session) -> None:
    first_use = {}
    for index, item in enumerate(session.items):
        for name in SHARED_RUNS:
            if name in getattr(item, "fixturenames", ()):
                first_use.setdefault(name, index)
    if first_use:
        root = session.config._tmp_path_factory.mktemp("shared_runs")  # what the tmp_path_factory fixture is
        session.config.stash[SHARED] = SharedRuns(root, sorted(first_use, key=first_use.get))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if SHARED in session.config.stash:
        session.config.stash[SHARED].stop()


@pytest.fixture(scope="session")
def tiny_run(request) -> Run:
    """experiment=tiny: a tiny random Llama, 3 demo concepts in 2 shards, 4 detectors and prompting."""
    return request.config.stash[SHARED].run("tiny_run")


@pytest.fixture(scope="session")
def tiny_full_run(request) -> Run:
    """experiment=tiny_full: every registered method on the tiny Llama, 2 concepts in 1 shard."""
    return request.config.stash[SHARED].run("tiny_full_run")


@pytest.fixture(scope="session")
def interpbench_tiny_run(request) -> Run:
    """experiment=interpbench_tiny: two one-layer Tracr tasks, their SIIT models, all five discovery methods."""
    return request.config.stash[SHARED].run("interpbench_tiny_run")


@pytest.fixture()
def tiny_run_copy(tiny_run, tmp_path) -> Run:
    """A private copy of the tiny run, for a test that edits its files."""
    return copy_run(tiny_run, tmp_path / "tiny")
