"""A persistent key -> JSON cache for paid API calls, stored in one sqlite file.

Several processes (for example parallel workflow jobs) may read and write the
same file at once: the database runs in WAL mode, every operation opens its own
short-lived connection, and a busy timeout makes a writer wait for the lock
instead of failing.  Each `put` commits immediately, so results written before
a crash are kept.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from interpflow.errors import ConfigError

_BUSY_TIMEOUT_S = 60.0


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


class CallCache:
    """A sqlite-backed mapping from a key string to a JSON-serialisable value."""

    key_for = staticmethod(key_for)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the cache folder {self.path.parent}: {exc}; "
                "choose a writable cache directory"
            ) from exc
        self._initialise()

    def _initialise(self) -> None:
        """Switch to WAL and create the table. SQLite answers "database is locked" at once (without
        waiting for the busy timeout) when two processes switch the journal mode together, so retry."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                with closing(self._connect()) as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05 + random.random() * 0.1)

    def _connect(self) -> sqlite3.Connection:
        """Open a new autocommit connection that waits for locks held by other writers."""
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"cannot open the call cache {self.path}: {exc}; check the path is writable"
            ) from exc
        conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
        return conn

    def get(self, key: str) -> Any | None:
        """Return the value stored under `key`, or None when there is none."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable) under `key`, replacing any earlier value."""
        text = json.dumps(value, ensure_ascii=False)
        with closing(self._connect()) as conn:
            conn.execute("INSERT OR REPLACE INTO calls (key, value) VALUES (?, ?)", (key, text))

    def __len__(self) -> int:
        with closing(self._connect()) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT 1 FROM calls WHERE key = ?", (key,)).fetchone()
        return row is not None
