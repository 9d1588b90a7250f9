"""Progress lines for long jobs: `done/total (share), rate, ETA`, at most every `every_s` seconds.

A job's log is all a user sees while it runs (on SLURM, for hours), so every loop over a model's
batches reports through one of these. Lines go to stdout, which the rules send to the job's log.
"""

from __future__ import annotations

import os
import sys
import time

EVERY_S = float(os.environ.get("INTERPFLOW_PROGRESS_EVERY_S", "30"))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """`update(n)` after each unit of work; a line is printed when `every_s` has passed since the last."""

    def __init__(self, what: str, total: int, unit: str = "items", every_s: float | None = None):
        self.what, self.total, self.unit = what, total, unit
        self.every_s = EVERY_S if every_s is None else every_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = f", ETA {_duration((self.total - self.done) / rate)}" if rate > 0 and self.total >= self.done else ""
        return f"{self.what}: {self.done}/{self.total} {self.unit}{share}, {rate:.2f} {self.unit}/s{eta}"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(), file=sys.stdout, flush=True)
