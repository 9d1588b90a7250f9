"""RASP building blocks shared by several tasks. Every expression gets an explicit name."""

from __future__ import annotations

from tracr.rasp import rasp


def length(name: str = "length") -> rasp.SOp:
    """The number of tokens, at every position (a selector-width head and its MLP)."""
    everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE).named(f"{name}_all")
    return rasp.SelectorWidth(everything).named(name)


def reverse(sop: rasp.SOp, prefix: str = "") -> rasp.SOp:
    """`sop` read backwards: position i takes the value at length - 1 - i."""
    n = length(f"{prefix}length")
    mirror = rasp.SequenceMap(lambda i, size: size - 1 - i, rasp.indices, n).named(f"{prefix}mirror_index")
    flip = rasp.Select(rasp.indices, mirror, rasp.Comparison.EQ).named(f"{prefix}flip")
    return rasp.Aggregate(flip, sop).named(f"{prefix}reverse")


def previous(sop: rasp.SOp, name: str) -> rasp.SOp:
    """The value one position back; the first position keeps its own, so no position is left
    without a value (tracr's compiled model has no categorical default)."""
    back = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == max(q - 1, 0)).named(f"{name}_select")
    return rasp.Aggregate(back, sop).named(name)


def numerical_flag(sop: rasp.SOp, test, name: str) -> rasp.SOp:
    """1 where `test(value)` holds, else 0, encoded as a number (what numerical aggregates average)."""
    return rasp.numerical(rasp.Map(lambda x: 1 if test(x) else 0, sop)).named(name)


def numerical_mean(selector: rasp.Selector, sop: rasp.SOp, name: str) -> rasp.SOp:
    return rasp.numerical(rasp.Aggregate(selector, sop, default=0)).named(name)
