"""What a circuit-benchmark task is: a RASP program, its vocabulary and its inputs."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

from tracr.rasp import rasp

Token = Hashable
Sampler = Callable[[random.Random, "Task", int], list]


@dataclass(frozen=True)
class Task:
    """One Tracr task of the benchmark.

    `build` makes a fresh RASP program each call (tracr gives every expression a new id, so a
    program is built once per compilation). Every expression of a program is named, and the
    names are unique within it: they, not tracr's id-suffixed labels, are what the stored
    correspondence calls RASP variables.
    """

    name: str
    description: str
    vocab: tuple[Token, ...]
    max_seq_len: int
    """Most input tokens, BOS not counted (tracr's `max_seq_len`)."""
    categorical: bool
    """True: one of a set of values per position (argmax); False: a number per position."""
    build: Callable[[], rasp.SOp]
    sampler: Sampler | None = None
    """Draws one input of a given length when the input space is too large to enumerate;
    uniform over the vocabulary when None. Tasks whose interesting outputs are rare under
    uniform sampling (balanced brackets, palindromes) give one that mixes them in."""

    @property
    def output_kind(self) -> str:
        return "categorical" if self.categorical else "numerical"

    def program(self) -> rasp.SOp:
        return self.build()

    def inputs(self, count: int = 512, seed: int = 0, length: int | None = None) -> list[list[Token]]:
        """Inputs of `length` tokens (default `max_seq_len`): all of them, in lexicographic order,
        when there are at most `count`; otherwise `count` drawn with `seed`."""
        length = self.max_seq_len if length is None else length
        if not 1 <= length <= self.max_seq_len:
            raise ValueError(f"{self.name}: length {length} outside 1..{self.max_seq_len}")
        if len(self.vocab) ** length <= count:
            return [list(seq) for seq in itertools.product(self.vocab, repeat=length)]
        rng = random.Random(seed)
        draw = self.sampler or uniform_sample
        return [draw(rng, self, length) for _ in range(count)]

    def evaluate(self, tokens: Sequence[Token], program: rasp.SOp | None = None) -> list:
        """The program's output on `tokens`, by RASP's own evaluator."""
        return list(rasp.evaluate(program if program is not None else self.build(), list(tokens)))


def uniform_sample(rng: random.Random, task: Task, length: int) -> list[Token]:
    return [rng.choice(task.vocab) for _ in range(length)]
