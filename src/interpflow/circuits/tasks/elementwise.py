"""Position-wise arithmetic: one MLP each."""

from __future__ import annotations

from tracr.rasp import rasp

from interpflow.circuits.tasks.base import Task

MODULUS = 7
DIGITS = tuple(range(MODULUS))


def _affine_mod() -> rasp.SOp:
    return rasp.Map(lambda x: (2 * x + 3) % MODULUS, rasp.tokens).named("affine_mod")


def _add_index_mod() -> rasp.SOp:
    return rasp.SequenceMap(lambda x, i: (x + i) % MODULUS, rasp.tokens, rasp.indices).named("add_index_mod")


TASKS = (
    Task("affine_mod", f"(2x + 3) mod {MODULUS} of each token.", DIGITS, 4, True, _affine_mod),
    Task("add_index_mod", f"Each token plus its position, mod {MODULUS}.", DIGITS, 4, True, _add_index_mod),
)
