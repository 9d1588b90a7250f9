"""The shared workflow runs, started in the background as soon as pytest knows which of them its
tests need.

Each experiment that several tests read (tiny, tiny_full, interpbench_tiny) runs through the real
Snakefile once per session. Started when collection ends, one after another and at low CPU priority
(nice 10), they are built on the core that the unit and integration tests, most of them
single-threaded, leave idle; the first test that needs a run then waits only for what is left of
it. A run that a test needs before its turn starts at once, at normal priority.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from concurrent.futures import Future
from pathlib import Path

from runs import Run, snakemake_command

# fixture name -> (run_name, overrides)
SHARED_RUNS = {
    "tiny_run": ("tiny", ["experiment=tiny"]),
    "tiny_full_run": ("tiny_full", ["experiment=tiny_full"]),
    "interpbench_tiny_run": ("interpbench_tiny", ["experiment=interpbench_tiny"]),
}
TIMEOUT_S = 1800
BACKGROUND_NICENESS = 10


class SharedRuns:
    """Builds the runs named in `order` in the background, one at a time; `run(name)` returns a
    finished one, waiting for it (or starting it) as needed."""

    def __init__(self, root: Path, order: list[str]):
        self.root = root
        self._lock = threading.Lock()
        self._waiting = list(order)
        self._futures: dict[str, Future] = {}
        self._processes: list[subprocess.Popen] = []
        self._stopped = False
        threading.Thread(target=self._build_in_order, daemon=True, name="shared-runs").start()

    def run(self, name: str) -> Run:
        with self._lock:
            future = self._futures.get(name)
            start_here = future is None
            if start_here:
                self._waiting.remove(name)
                future = self._futures[name] = Future()
        if start_here:
            self._build(name, future, background=False)
        return future.result()

    def stop(self) -> None:
        """End every run still going (a session stopped early by -x, Ctrl-C or a failure)."""
        with self._lock:
            self._stopped = True
            self._waiting.clear()
            running = [p for p in self._processes if p.poll() is None]
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def _build_in_order(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    return
                name = self._waiting.pop(0)
                future = self._futures[name] = Future()
            self._build(name, future, background=True)

    def _build(self, name: str, future: Future, background: bool) -> None:
        run_name, overrides = SHARED_RUNS[name]
        workdir = self.root / run_name
        workdir.mkdir(parents=True)
        command, env = snakemake_command(workdir, overrides)
        with self._lock:
            if self._stopped:
                future.set_exception(RuntimeError("the test session ended before this run"))
                return
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,  # its own process group, so stop() ends its jobs too
                preexec_fn=(lambda: os.nice(BACKGROUND_NICENESS)) if background else None)
            self._processes.append(process)
        try:
            output, _ = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        if process.returncode == 0:
            future.set_result(Run(workdir, overrides, workdir / "results" / run_name))
        else:
            future.set_exception(AssertionError(f"{run_name} did not finish (exit {process.returncode}):\n{output[-6000:]}"))
