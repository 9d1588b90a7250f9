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
    """The three 0-2 scores of one generation, with the judge's raw output for each."""

    concept_score: float
    instruction_score: float
    fluency_score: float
    concept_raw: str
    instruction_raw: str
    fluency_raw: str


@runtime_checkable
class Judge(Protocol):
    """Anything that scores generations; `judge_id` names the judge in result tables."""

    judge_id: str

    def score(self, items: list[JudgeItem]) -> list[JudgeScores]:
        """Return one JudgeScores per item, in the same order."""
        ...

    def usage(self) -> dict[str, Any]:
        """Return totals of the work done so far (requests, cached, tokens, cost_usd)."""
        ...
