"""Artifact I/O: atomic writes, round trips, and reads of a damaged artifact that name it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors import safe_open

from interpflow.artifacts import (
    atomic_path,
    open_tensors,
    read_json,
    read_parquet,
    read_tensor_metadata,
    read_tensors,
    write_json,
    write_parquet,
    write_tensors,
    write_text,
)
from interpflow.errors import ArtifactError


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "out.parquet"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_bytes(b"half a file")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temp file either


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text("complete", target)
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise ValueError
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame(
        {"example_id": [3, 1, 2], "concept": ["a", "b", "c"], "score": [0.5, -1.0, 2.25]}, index=[10, 20, 30]
    )
    path = tmp_path / "f.parquet"
    write_parquet(frame, path)
    back = read_parquet(path)
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))


def test_tensors_round_trip_with_metadata(tmp_path):
    tensors = {
        "acts": torch.randn(5, 4),
        "offsets": torch.tensor([0, 2, 5]),
        "transposed": torch.arange(6.0).reshape(2, 3).T,  # not contiguous: written anyway
    }
    path = tmp_path / "t.safetensors"
    write_tensors(tensors, path, metadata={"model": "tiny", "layer": 2})
    back = read_tensors(path)
    assert set(back) == set(tensors)
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype
        assert torch.equal(back[key], value)
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"model": "tiny", "layer": "2"}  # values are stored as strings


def test_json_and_text(tmp_path):
    write_json({"b": 1, "a": [1, 2]}, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2], "b": 1}
    write_text("hello\n", tmp_path / "deep" / "x.txt")
    assert (tmp_path / "deep" / "x.txt").read_text() == "hello\n"


def test_written_artifacts_get_the_usual_file_mode(tmp_path):
    import os
    import stat

    from interpflow.artifacts import FILE_MODE, write_json

    write_json({"a": 1}, tmp_path / "x.json")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == FILE_MODE == 0o666 & ~mask


def test_sigterm_mid_write_leaves_no_temporary_file(tmp_path):
    """What SLURM's or Snakemake's SIGTERM does to a stage started through `interpflow`'s CLI."""
    import signal
    import subprocess
    import sys

    script = (
        "import signal, sys, time\n"
        "from interpflow.artifacts import atomic_path\n"
        "from interpflow.cli import _exit_on_sigterm\n"
        "signal.signal(signal.SIGTERM, _exit_on_sigterm)\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'x' * 100_000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    job = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "artifact.bin")], stdout=subprocess.PIPE, text=True)
    assert job.stdout.readline().strip() == "writing"
    assert len(list(tmp_path.iterdir())) == 1  # the temporary file, mid-write
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_file_goes_when_the_artifact_is_rewritten(tmp_path):
    target = tmp_path / "out.txt"
    stale = tmp_path / ".out.txt.abc123.tmp"  # what SIGKILL leaves behind
    stale.write_text("half")
    other = tmp_path / ".other.txt.abc123.tmp"  # another artifact's: not ours to delete
    other.write_text("half")
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and not stale.exists() and other.exists()


def truncated(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("read", [read_tensors, read_tensor_metadata, lambda p: open_tensors(p).__enter__()],
                         ids=["read_tensors", "read_tensor_metadata", "open_tensors"])
def test_a_truncated_safetensors_file_is_named(tmp_path, read):
    path = tmp_path / "methods" / "diffmean.safetensors"
    write_tensors({"directions": torch.randn(64, 32)}, path, {"layer": 2})
    with pytest.raises(ArtifactError) as raised:
        read(truncated(path))
    assert raised.value.path == str(path) and str(path) in str(raised.value) and "damaged" in str(raised.value)


def test_a_tensor_missing_from_an_artifact_is_named(tmp_path):
    path = tmp_path / "acts.safetensors"
    write_tensors({"acts": torch.zeros(2, 2)}, path)
    with pytest.raises(ArtifactError, match="acts.safetensors") as raised, open_tensors(path) as file:
        file.get_tensor("index")
    assert raised.value.path == str(path)


def test_an_error_of_the_reader_itself_is_not_called_damage(tmp_path):
    path = tmp_path / "acts.safetensors"
    write_tensors({"acts": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="the reader's own"), open_tensors(path):
        raise ValueError("the reader's own check")


@pytest.mark.parametrize("suffix", ["parquet", "json"])
def test_a_truncated_table_or_json_is_named(tmp_path, suffix):
    path = tmp_path / "eval" / f"scores.{suffix}"
    write_parquet(pd.DataFrame({"concept_id": range(50), "score": 0.5}), path) if suffix == "parquet" else \
        write_json({"concept": "ocean", "scores": list(range(50))}, path)
    read = read_parquet if suffix == "parquet" else read_json
    with pytest.raises(ArtifactError) as raised:
        read(truncated(path))
    assert raised.value.path == str(path) and str(path) in str(raised.value)


def test_a_missing_artifact_stays_file_not_found(tmp_path):
    """Not damage: the stage that writes it has not run (the CLI says so)."""
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "nope.parquet")
