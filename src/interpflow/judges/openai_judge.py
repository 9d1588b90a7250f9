"""An LLM judge that asks an OpenAI-compatible chat model for the three AxBench scores.

Each generation is graded with three separate rubric prompts (concept,
instruction relevance, fluency).  Every prompt asks for a short reason and a
final line "Rating: [[n]]" with n in 0, 1, 2.  A reply whose rating cannot be
read is kept verbatim in the raw column and scored 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from interpflow.errors import ConfigError
from interpflow.judges.base import JudgeItem, JudgeScores
from interpflow.providers.cache import CallCache
from interpflow.providers.openai_chat import ChatClient, Messages, require_api_key

DEFAULTS: dict[str, Any] = {
    "name": "openai",
    "model": "gpt-4o-mini",
    "base_url": None,
    "api_key_env": "OPENAI_API_KEY",
    "temperature": 0.0,
    "max_tokens": 256,
    "concurrency": 8,
    "timeout_s": 60.0,
    "max_retries": 5,
    "backoff_s": 1.0,
    "price_per_1m": None,
}

SYSTEM_PROMPT = "You are a strict and consistent grader of text written by language models."

_CLOSING = (
    "The text may stop in the middle of a sentence because of a length limit; "
    "do not penalise that.\n\n"
    "First explain your judgement in one or two sentences. Then end your reply with a "
    "line of exactly this form, where n is 0, 1 or 2:\n"
    "Rating: [[n]]"
)

CONCEPT_PROMPT = (
    "Decide whether the text below contains, or clearly relates to, the given concept.\n\n"
    "Concept: {concept}\n\n"
    "Text:\n<<<\n{generation}\n>>>\n\n"
    "Scale:\n"
    "0 = the concept is absent.\n"
    "1 = the concept shows up only faintly, indirectly, or in a forced way.\n"
    "2 = the concept is plainly and clearly present.\n\n" + _CLOSING
)

INSTRUCTION_PROMPT = (
    "Decide whether the text below is a relevant response to the given instruction. "
    "Judge relevance only, not correctness or style; a response that drifts onto an "
    "unrelated subject is less relevant.\n\n"
    "Instruction: {instruction}\n\n"
    "Text:\n<<<\n{generation}\n>>>\n\n"
    "Scale:\n"
    "0 = the text has nothing to do with the instruction.\n"
    "1 = the text touches on the instruction but is partly off-topic or only loosely related.\n"
    "2 = the text addresses the instruction directly.\n\n" + _CLOSING
)

FLUENCY_PROMPT = (
    "Decide how fluent the text below is: grammatical, coherent, natural to read, "
    "and free of pointless repetition or gibberish. Ignore whether it is on topic.\n\n"
    "Text:\n<<<\n{generation}\n>>>\n\n"
    "Scale:\n"
    "0 = not fluent: broken grammar, gibberish, or heavy repetition.\n"
    "1 = understandable but with clear flaws (awkward phrasing, some repetition or incoherence).\n"
    "2 = fluent, natural writing.\n\n" + _CLOSING
)

_BRACKETS = re.compile(r"\[\[([^\[\]]*)\]\]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
EMPTY_RAW = "empty generation"


def parse_rating(text: str | None) -> float | None:
    """Read the rating from a judge reply: the last "[[...]]" in the text.

    Returns its value when it holds a plain number (integer or decimal, no sign)
    between 0 and 2 inclusive; otherwise (no brackets, not a number, out of
    range) returns None.
    """
    if not text:
        return None
    matches = _BRACKETS.findall(text)
    if not matches:
        return None
    content = matches[-1].strip()
    if not _NUMBER.fullmatch(content):
        return None
    value = float(content)
    return value if 0.0 <= value <= 2.0 else None


def _checked_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill in defaults and reject unknown keys or bad values with a ConfigError."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in the openai judge config; allowed keys: {sorted(DEFAULTS)}"
        )
    merged = {**DEFAULTS, **cfg}
    if not isinstance(merged["max_tokens"], int) or merged["max_tokens"] < 1:
        raise ConfigError(f"judge.max_tokens must be a positive integer (got {merged['max_tokens']!r})")
    if not isinstance(merged["temperature"], (int, float)) or merged["temperature"] < 0:
        raise ConfigError(f"judge.temperature must be a number >= 0 (got {merged['temperature']!r})")
    if not isinstance(merged["concurrency"], int):
        raise ConfigError(f"judge.concurrency must be an integer (got {merged['concurrency']!r})")
    return merged


class OpenAIJudge:
    """Score generations with an OpenAI-compatible chat model; answers are cached on disk."""

    def __init__(self, cfg: dict[str, Any], cache_dir: Path) -> None:
        self.cfg = _checked_config(cfg)
        self.judge_id = f"openai:{self.cfg['model']}"
        self.unparsed = 0
        require_api_key(self.cfg["api_key_env"], "judge")  # before the cache file is created
        self.client = ChatClient(
            model=self.cfg["model"],
            base_url=self.cfg["base_url"],
            api_key_env=self.cfg["api_key_env"],
            concurrency=self.cfg["concurrency"],
            timeout_s=float(self.cfg["timeout_s"]),
            max_retries=int(self.cfg["max_retries"]),
            backoff_s=float(self.cfg["backoff_s"]),
            cache=CallCache(Path(cache_dir) / "judge_calls.sqlite"),
            price_per_1m=self.cfg["price_per_1m"],
        )

    @staticmethod
    def _messages(prompt: str) -> Messages:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]

    def _prompts(self, item: JudgeItem) -> list[Messages]:
        """The concept, instruction and fluency requests for one item, in that order."""
        return [
            self._messages(CONCEPT_PROMPT.format(concept=item.concept, generation=item.generation)),
            self._messages(
                INSTRUCTION_PROMPT.format(instruction=item.instruction, generation=item.generation)
            ),
            self._messages(FLUENCY_PROMPT.format(generation=item.generation)),
        ]

    def _rating(self, raw: str) -> float:
        value = parse_rating(raw)
        if value is None:
            self.unparsed += 1
            return 0.0
        return value

    def score(self, items: list[JudgeItem]) -> list[JudgeScores]:
        """Score all items; empty generations get 0 on all three without an API call."""
        to_ask = [i for i, item in enumerate(items) if item.generation.strip()]
        requests = [m for i in to_ask for m in self._prompts(items[i])]
        replies = self.client.complete_many(
            requests, temperature=float(self.cfg["temperature"]), max_tokens=self.cfg["max_tokens"]
        )
        raw_by_item = {i: [c.text for c in replies[3 * n : 3 * n + 3]] for n, i in enumerate(to_ask)}

        scores = []
        for i in range(len(items)):
            if i not in raw_by_item:
                scores.append(JudgeScores(0.0, 0.0, 0.0, EMPTY_RAW, EMPTY_RAW, EMPTY_RAW))
                continue
            concept_raw, instruction_raw, fluency_raw = raw_by_item[i]
            scores.append(
                JudgeScores(
                    concept_score=self._rating(concept_raw),
                    instruction_score=self._rating(instruction_raw),
                    fluency_score=self._rating(fluency_raw),
                    concept_raw=concept_raw,
                    instruction_raw=instruction_raw,
                    fluency_raw=fluency_raw,
                )
            )
        return scores

    def usage(self) -> dict[str, Any]:
        """API totals (requests, cached, tokens, cost_usd) plus the count of unreadable ratings."""
        return {**self.client.usage(), "unparsed": self.unparsed}
