"""Shared fixtures: the repository root and one tiny random Llama prepared once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No network in tests: every model and tokenizer comes from local files.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# `make test` runs two pytest workers (pytest-xdist), one per core. Each gets one torch thread, set
# before torch loads: a second thread spinning beside the other worker made tiny forward passes many
# times slower. Workflow jobs still get Snakemake's {threads}.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

# The shared workflow runs (tests/workflow/conftest.py), most expensive first: the tests that read one
# run are sent to one worker together, and these groups are handed out first, so the longest ones do
# not start last. Any other test file is a group of its own (its module fixtures are built once).
SHARED_RUNS = ("tiny_full_run", "tiny_run", "interpbench_tiny_run")
LONG_FILES = ("tests/workflow/test_slurm.py", "tests/integration/test_axbench_concept10.py",
              "tests/workflow/test_llm_server.py", "tests/workflow/test_inputs_tracked.py")

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY_LLAMA = {
    "name": "tiny",
    "source": "tiny",
    "id": None,
    "prompt_style": "chat",
    "completion_template": "{instruction}\n",
    "score_context": "bare_response",
    "dtype": "float32",
    "layers": [2],
    "tiny": {"arch": "llama", "n_layers": 4, "d_model": 64, "n_heads": 4, "seed": 0},
}


def missing_prerequisite(reason: str) -> None:
    """A prerequisite is missing: skip, with the reason shown, except in CI (CI=true), where the
    Makefile installs every prerequisite and a missing one must fail the run, not hide it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: `make test` should have provided it, so this is a failure, not a skip)",
                    pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def unavailable():
    """`unavailable(reason)`: skip outside CI, fail in CI (see missing_prerequisite)."""
    return missing_prerequisite


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding config/, workflow/ and src/)."""
    assert (REPO_ROOT / "config" / "config.yaml").is_file()
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model_cfg() -> dict:
    """The model config the tiny Llama was prepared from (a copy, so tests may change it)."""
    return {**TINY_LLAMA, "tiny": dict(TINY_LLAMA["tiny"])}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-block, d_model 64 random Llama with SmolLM2's tokenizer, prepared once per session."""
    from interpflow.models.loading import MANIFEST, prepare_model

    out = tmp_path_factory.mktemp("tiny_llama")
    prepare_model(TINY_LLAMA, out)
    assert (out / MANIFEST).is_file()
    return out


@pytest.fixture()
def one_torch_thread():
    """For tests on small tensors and tiny models: one thread is faster, and immune to other
    processes on the cores (a second thread made tiny forward passes 20-40x slower on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, group the tests as SHARED_RUNS says, longest groups first."""
    if not getattr(config.option, "loadgroup", False):  # set in the workers of `-n N --dist loadgroup`
        return
    order = [*SHARED_RUNS, *LONG_FILES]
    for item in items:
        group = next((run for run in SHARED_RUNS if run in item.fixturenames),
                     item.path.relative_to(REPO_ROOT).as_posix())
        item.add_marker(pytest.mark.xdist_group(group))
        item.stash[_GROUP] = group
    items.sort(key=lambda item: order.index(item.stash[_GROUP]) if item.stash[_GROUP] in order else len(order))


_GROUP = pytest.StashKey[str]()
