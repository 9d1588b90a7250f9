"""Shared types for judges: what they read, what they return, and the interface they follow.

A judge gives each generation three AxBench-style scores on a 0-2 scale:
whether the steering concept is present, whether the text is relevant to the
instruction, and whether it is fluent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass
class JudgeItem:
    """One generation to score.

    `concept` is the concept description, `instruction` the prompt the model
    answered, `generation` its output and `perplexity` the output's perplexity
    (NaN when unknown).
    """

    concept: str
    instruction: str
    generation: str
    perplexity: float


@dataclass
class JudgeScores:
    """The three 0-2 scores of one generation, with the judge's raw output for each; `unparsed`: how
    many of the three came from a reply whose rating could not be read (scored 0)."""

    concept_score: float
    instruction_score: float
    fluency_score: float
    concept_raw: str
    instruction_raw: str
    fluency_raw: str
    unparsed: int = 0


@runtime_checkable
class Judge(Protocol):
    """Anything that scores generations; `judge_id` names the judge in result tables, and `proxy` is
    true for a stand-in that does not grade AxBench's rubrics with an LLM (its scores are reported
    apart from an LLM judge's)."""

    judge_id: str
    proxy: bool

    def score(self, items: list[JudgeItem]) -> list[JudgeScores]:
        """Return one JudgeScores per item, in the same order."""
        ...

    def usage(self) -> dict[str, Any]:
        """Return totals of the work done so far (requests, cached, tokens, cost_usd)."""
        ...
