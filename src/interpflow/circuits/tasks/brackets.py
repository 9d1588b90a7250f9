"""Bracket tasks: the running balance of '(' over ')', and whether the whole input is balanced."""

from __future__ import annotations

import random

from tracr.rasp import rasp

from interpflow.circuits.tasks.base import Task
from interpflow.circuits.tasks.common import numerical_flag, numerical_mean

VOCAB = ("(", ")", "x")


def _pair_balance() -> rasp.SOp:
    opens = numerical_flag(rasp.tokens, lambda t: t == "(", "opens")
    closes = numerical_flag(rasp.tokens, lambda t: t == ")", "closes")
    so_far = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("so_far")
    open_share = numerical_mean(so_far, opens, "open_share")
    close_share = numerical_mean(so_far, closes, "close_share")
    return rasp.numerical(rasp.LinearSequenceMap(open_share, close_share, 1, -1)).named("pair_balance")


def _balanced() -> rasp.SOp:
    # Balanced iff no prefix closes more than it opens and the whole input opens as many as it
    # closes. Prefix shares are counts divided by the prefix length, so their sign is the count's.
    opens = numerical_flag(rasp.tokens, lambda t: t == "(", "opens")
    closes = numerical_flag(rasp.tokens, lambda t: t == ")", "closes")
    so_far = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("so_far")
    everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE).named("everything")
    prefix = rasp.numerical(rasp.LinearSequenceMap(
        numerical_mean(so_far, opens, "open_share"), numerical_mean(so_far, closes, "close_share"), 1, -1,
    )).named("prefix_balance")
    total = rasp.numerical(rasp.LinearSequenceMap(
        numerical_mean(everything, opens, "total_open_share"),
        numerical_mean(everything, closes, "total_close_share"), 1, -1,
    )).named("total_balance")
    dips = numerical_flag(prefix, lambda b: b < 0, "prefix_negative")
    dip_share = numerical_mean(everything, dips, "negative_share")
    never_dips = rasp.Map(lambda s: s == 0, dip_share).named("never_negative")
    ends_even = rasp.Map(lambda b: b == 0, total).named("ends_even")
    return rasp.SequenceMap(lambda a, b: "yes" if a and b else "no", never_dips, ends_even).named("balanced")


def _balanced_sample(rng: random.Random, task: Task, length: int) -> list:
    """Half balanced strings ('x' filling what the brackets leave), half uniform draws."""
    if rng.random() < 0.5:
        return [rng.choice(VOCAB) for _ in range(length)]
    out, depth = [], 0
    for left in range(length, 0, -1):
        choices = ["x"] if left > depth else []
        if left >= depth + 2:
            choices.append("(")
        if depth > 0:
            choices.append(")")
        token = rng.choice(choices)
        depth += {"(": 1, ")": -1}.get(token, 0)
        out.append(token)
    return out


TASKS = (
    Task("pair_balance", "The share of '(' minus the share of ')' among the tokens up to each position.",
         VOCAB, 5, False, _pair_balance),
    Task("balanced_parens", "Whether the brackets of the whole input are balanced, at every position.",
         VOCAB, 6, True, _balanced, _balanced_sample),
)
