"""Tasks that move tokens between positions: reverse, sort, previous token, first token, trend,
palindrome."""

from __future__ import annotations

import random

from tracr.rasp import rasp

from interpflow.circuits.tasks.base import Task, uniform_sample
from interpflow.circuits.tasks.common import numerical_flag, numerical_mean, previous, reverse

LETTERS = ("a", "b", "c")
DIGITS = (0, 1, 2, 3)
SEQ_LEN = 5


def _reverse() -> rasp.SOp:
    return reverse(rasp.tokens)


def _sort() -> rasp.SOp:
    # Ties are broken by position, so every key is distinct and each output position selects
    # exactly one token.
    key = rasp.SequenceMap(lambda t, i: t * SEQ_LEN + i, rasp.tokens, rasp.indices).named("sort_key")
    smaller = rasp.Select(key, key, rasp.Comparison.LT).named("smaller")
    target = rasp.SelectorWidth(smaller).named("target_position")
    place = rasp.Select(target, rasp.indices, rasp.Comparison.EQ).named("place")
    return rasp.Aggregate(place, rasp.tokens).named("sort")


def _previous_token() -> rasp.SOp:
    return previous(rasp.tokens, "previous_token")


def _first_token() -> rasp.SOp:
    zero = rasp.Map(lambda i: 0, rasp.indices).named("zero")
    first = rasp.Select(rasp.indices, zero, rasp.Comparison.EQ).named("first_select")
    return rasp.Aggregate(first, rasp.tokens).named("first_token")


def _trend() -> rasp.SOp:
    before = previous(rasp.tokens, "previous_token")

    def compare(now: int, then: int) -> str:
        return "up" if now > then else "down" if now < then else "same"

    return rasp.SequenceMap(compare, rasp.tokens, before).named("trend")


def _palindrome() -> rasp.SOp:
    backwards = reverse(rasp.tokens)
    differs = rasp.SequenceMap(lambda x, y: x != y, rasp.tokens, backwards).named("differs")
    differs_number = numerical_flag(differs, bool, "differs_number")
    everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE).named("everything")
    mismatch = numerical_mean(everything, differs_number, "mismatch_fraction")
    return rasp.Map(lambda f: "yes" if f == 0 else "no", mismatch).named("palindrome")


def _palindrome_sample(rng: random.Random, task: Task, length: int) -> list:
    """Half palindromes, half uniform draws (which are almost never palindromes)."""
    if rng.random() < 0.5:
        return uniform_sample(rng, task, length)
    half = uniform_sample(rng, task, (length + 1) // 2)
    return half + half[: length // 2][::-1]


TASKS = (
    Task("reverse", "The input read backwards.", LETTERS, SEQ_LEN, True, _reverse),
    Task("sort", "The tokens in ascending order.", DIGITS, SEQ_LEN, True, _sort),
    Task("previous_token", "The token one position back (the first position keeps its own).",
         LETTERS + ("d",), SEQ_LEN, True, _previous_token),
    Task("first_token", "The first token, at every position.", LETTERS + ("d",), SEQ_LEN, True, _first_token),
    Task("trend", "Whether each token is above, below or equal to the previous one.", DIGITS, SEQ_LEN, True,
         _trend),
    Task("palindrome", "Whether the whole input reads the same backwards, at every position.",
         LETTERS, SEQ_LEN, True, _palindrome, _palindrome_sample),
)
