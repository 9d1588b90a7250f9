"""The workflow tests' shared runs: each experiment runs through the real Snakefile once per test
session, and every test reads that run (or a copy of it, when the test changes files)."""

from __future__ import annotations

import pytest

from runs import Run, copy_run, finished_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Run:
    """experiment=tiny: a tiny random Llama, 3 demo concepts in 2 shards, 4 detectors and prompting."""
    return finished_run(tmp_path_factory.mktemp("tiny"), ["experiment=tiny"], "tiny")


@pytest.fixture(scope="session")
def tiny_full_run(tmp_path_factory) -> Run:
    """experiment=tiny_full: every registered method on the tiny Llama, 2 concepts in 1 shard."""
    return finished_run(tmp_path_factory.mktemp("tiny_full"), ["experiment=tiny_full"], "tiny_full")


@pytest.fixture(scope="session")
def interpbench_tiny_run(tmp_path_factory) -> Run:
    """experiment=interpbench_tiny: two one-layer Tracr tasks, their SIIT models, all five discovery methods."""
    return finished_run(tmp_path_factory.mktemp("interpbench_tiny"), ["experiment=interpbench_tiny"], "interpbench_tiny")


@pytest.fixture()
def tiny_run_copy(tiny_run, tmp_path) -> Run:
    """A private copy of the tiny run, for a test that edits its files."""
    return copy_run(tiny_run, tmp_path / "tiny")
