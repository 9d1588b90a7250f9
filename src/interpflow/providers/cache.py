"""A persistent key -> JSON cache for paid API calls: one small file per answer, in a folder.

Jobs on several hosts share the cache through the cluster's filesystem, often NFS, where SQLite's
WAL mode is documented not to work and its locking is unreliable. So no file is ever edited in
place and nothing is locked: an answer is written to a temporary file in the cache folder, flushed
to disk, and renamed over its final name, which NFS performs atomically on the server. A reader sees a whole
answer or none; two jobs asking the same question both write the same answer, and the last rename
wins. An entry that cannot be read (a disk fault, a hand edit, a file cut short) counts as missing:
the call is made again and the entry replaced, and a warning names the file. A read that NFS
answers with ESTALE or EIO (a file replaced on another host, a server hiccup) is tried again a few
times before the entry counts as missing, so a flaky mount costs a call, never the job.

Temporary files are written in `<folder>/tmp/` and renamed from there (the same filesystem, so the
rename stays atomic). A writer killed outright (SIGKILL, an OOM kill) leaves its temporary file:
opening the cache removes those older than an hour; younger ones may belong to a job writing right
now on another host. Keeping them in one folder makes that sweep a listing of a few files rather
than of every answer.

Layout: `<folder>/<key[:2]>/<key>.json`, keys being sha256 digests (`key_for`). A cache folder
named `x.sqlite` is the folder `x.cache`; an existing SQLite file of the previous format at the old
name is read once into it, so no paid answer is lost.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

from interpflow.artifacts import FILE_MODE
from interpflow.errors import ConfigError

STALE_TEMPORARY_AGE_S = 3600.0  # a temporary file this old has no live writer: none takes an hour
TRANSIENT_READ_ERRORS = {errno.ESTALE, errno.EIO}
READ_RETRY_DELAYS_S = (0.05, 0.2, 0.5)  # the waits between the tries of a read NFS refused


def key_for(**parts: Any) -> str:
    """Return a stable cache key: the sha256 of the canonical JSON of `parts`.

    Pass everything that changes the answer of a call, e.g. provider, base_url,
    model, messages (or prompt), sampling parameters and the sample index.
    The order of keyword arguments and of dict keys does not matter.
    """
    canonical = json.dumps(
        parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _file_name(key: str) -> str:
    """Keys are hex digests in practice; any other string is hashed so it is a safe file name."""
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class CallCache:
    """A mapping from a key string to a JSON-serialisable value, one file per entry."""

    key_for = staticmethod(key_for)

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.folder = path.with_suffix(".cache") if path.suffix == ".sqlite" else path
        self.temporaries = self.folder / "tmp"
        try:
            self.temporaries.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the cache folder {self.folder}: {exc}; choose a writable cache directory"
            ) from exc
        self._remove_stale_temporaries()
        if path.suffix == ".sqlite" and path.is_file():
            self._import_sqlite(path)

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporary files of writers killed more than STALE_TEMPORARY_AGE_S ago."""
        now = time.time()
        for temporary in self.temporaries.glob("*.tmp"):
            try:
                if now - temporary.stat().st_mtime > STALE_TEMPORARY_AGE_S:
                    temporary.unlink()
            except OSError:
                pass  # renamed by its writer or removed by another job's sweep meanwhile

    def _entry(self, key: str) -> Path:
        name = _file_name(key)
        return self.folder / name[:2] / f"{name}.json"

    def get(self, key: str) -> Any | None:
        """Return the value stored under `key`, or None when there is none (or it is unreadable)."""
        entry = self._entry(key)
        try:
            data = self._read(entry)
        except FileNotFoundError:
            return None
        except OSError as exc:
            warnings.warn(f"call cache: cannot read {entry} ({exc}); the call is made again", stacklevel=2)
            return None
        try:
            return json.loads(data.decode("utf-8"))["value"]
        except (ValueError, KeyError, TypeError):  # cut short, empty, not UTF-8 or not an entry
            warnings.warn(f"call cache: unreadable entry {entry} ignored; the call is made again", stacklevel=2)
            return None

    @staticmethod
    def _read(entry: Path) -> bytes:
        """The entry's bytes; a read refused with ESTALE or EIO is tried again after a short wait."""
        for delay in READ_RETRY_DELAYS_S:
            try:
                return entry.read_bytes()
            except OSError as exc:
                if exc.errno not in TRANSIENT_READ_ERRORS:
                    raise
            time.sleep(delay)
        return entry.read_bytes()

    def put(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable) under `key`, replacing any earlier value."""
        entry = self._entry(key)
        entry.parent.mkdir(exist_ok=True)
        text = json.dumps({"key": key, "value": value}, ensure_ascii=False)
        handle, tmp = tempfile.mkstemp(dir=self.temporaries, prefix=f"{entry.stem[:8]}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("??/*.json"))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def _import_sqlite(self, path: Path) -> None:
        """Copy every entry of a cache written by the SQLite version once; the old file is kept."""
        marker = self.folder / f".imported-{path.name}"
        if marker.exists():
            return
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                rows = conn.execute("SELECT key, value FROM calls").fetchall()
        except sqlite3.Error as exc:
            warnings.warn(f"call cache: could not read the old cache {path} ({exc}); its answers will be asked again")
            return
        for key, text in rows:
            if self.get(key) is None:
                self.put(key, json.loads(text))
        marker.touch()
