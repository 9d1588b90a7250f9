"""The call cache under the faults of a shared filesystem: reads NFS refuses for a moment (ESTALE,
EIO), entries cut short or emptied, files that cannot be read at all, and the temporary files of
writers killed outright."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from interpflow.providers import cache as cache_module
from interpflow.providers.cache import STALE_TEMPORARY_AGE_S, CallCache


@pytest.fixture()
def cache(tmp_path: Path) -> CallCache:
    cache = CallCache(tmp_path / "calls")
    cache.put("k", {"text": "hello"})
    return cache


def entry_of(cache: CallCache) -> Path:
    (entry,) = cache.folder.glob("??/*.json")
    return entry


def refuse_reads(monkeypatch, entry: Path, code: int, times: int) -> list[int]:
    """Make the first `times` reads of `entry` fail with OSError(code), as NFS does; returns the
    list the number of reads is counted in."""
    real_open = Path.open
    reads = []

    def open_(path: Path, mode="r", *args, **kwargs):
        if path == entry and "r" in mode:
            reads.append(1)
            if len(reads) <= times:
                raise OSError(code, os.strerror(code), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(cache_module, "READ_RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    return reads


@pytest.mark.parametrize("code", [errno.ESTALE, errno.EIO])
def test_a_read_nfs_refuses_for_a_moment_is_tried_again(cache, monkeypatch, code):
    reads = refuse_reads(monkeypatch, entry_of(cache), code, times=2)
    assert cache.get("k") == {"text": "hello"}
    assert len(reads) == 3


def test_a_read_nfs_keeps_refusing_is_a_miss_with_a_warning(cache, monkeypatch):
    entry = entry_of(cache)
    reads = refuse_reads(monkeypatch, entry, errno.ESTALE, times=100)
    with pytest.warns(UserWarning, match=entry.name):
        assert cache.get("k") is None
    assert len(reads) == len(cache_module.READ_RETRY_DELAYS_S) + 1


def test_an_entry_that_cannot_be_read_at_all_is_a_miss(cache):
    entry = entry_of(cache)
    entry.unlink()
    entry.mkdir()  # reading it fails with IsADirectoryError, an OSError other than ENOENT
    with pytest.warns(UserWarning, match=entry.name):
        assert cache.get("k") is None


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],  # cut short: a writer of the old format, a full disk
    lambda data: b"",                     # emptied
    lambda data: b"\xff\xfe" + data[2:],  # not UTF-8
])
def test_a_damaged_entry_is_a_miss_and_the_next_answer_replaces_it(cache, damage):
    entry = entry_of(cache)
    entry.write_bytes(damage(entry.read_bytes()))
    with pytest.warns(UserWarning, match=entry.name):
        assert cache.get("k") is None
    cache.put("k", {"text": "again"})
    assert cache.get("k") == {"text": "again"}


def test_opening_the_cache_removes_the_stale_temporary_files_of_killed_writers(cache):
    stale = cache.temporaries / "0123abcd.xyz.tmp"
    stale.write_text('{"key": "k", "va')  # a writer SIGKILLed mid-write, two hours ago
    two_hours_ago = time.time() - 2 * STALE_TEMPORARY_AGE_S
    os.utime(stale, (two_hours_ago, two_hours_ago))
    fresh = cache.temporaries / "4567cdef.xyz.tmp"
    fresh.write_text('{"key": "j", "va')  # maybe a job writing right now on another host
    CallCache(cache.folder)
    assert not stale.exists() and fresh.exists()
    assert len(CallCache(cache.folder)) == 1


def test_a_write_leaves_no_temporary_file(cache):
    cache.put("j", {"text": "more"})
    assert list(cache.temporaries.iterdir()) == []
    assert not [p for p in cache.folder.rglob("*") if p.name.endswith(".tmp")]
