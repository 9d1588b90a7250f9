"""The registry of Tracr tasks (after InterpBench's Tracr cases), by name."""

from __future__ import annotations

from interpflow.circuits.tasks import brackets, counting, elementwise, sequence
from interpflow.circuits.tasks.base import Task

TASKS: dict[str, Task] = {t.name: t for t in (*sequence.TASKS, *counting.TASKS, *brackets.TASKS, *elementwise.TASKS)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown circuit task {name!r}; known: {', '.join(sorted(TASKS))}") from None


__all__ = ["TASKS", "Task", "get_task"]
