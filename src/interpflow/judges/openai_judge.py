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
    "temperature": 0.7,
    "max_tokens": 256,
    "concurrency": 8,
    "timeout_s": 60.0,
    "max_retries": 5,
    "backoff_s": 1.0,
    "price_per_1m": None,
}

# AxBench's three rubrics (github stanfordnlp/axbench, evaluators/prompt_templates.py): the same
# criteria, scales and answer format, in our own words; each sent as a single user message, as AxBench does.
_CLOSING = (
    "Start with a short explanation. Then give your rating on the last line, written exactly as "
    "Rating: [[n]] with n being 0, 1 or 2."
)

CONCEPT_PROMPT = (
    "You are an impartial judge. Decide whether the concept named below appears in the text fragment "
    "that follows it. Judge only whether the concept is clearly worked into the fragment; ignore grammar "
    "and whether the fragment makes logical sense.\n\n"
    "In your explanation, quote or point to the parts of the fragment that refer to the concept, and say "
    "where a reference is only minimal or awkward.\n\n"
    "Rating scale: 0 = the concept does not appear at all; 1 = the concept appears, but only minimally or "
    "awkwardly; 2 = the concept is fully and effectively worked in, and reads as a natural part of the text.\n\n"
    "Concept:\n<<<\n{concept}\n>>>\n\n"
    "Text fragment:\n<<<\n{generation}\n>>>\n\n" + _CLOSING
)

INSTRUCTION_PROMPT = (
    "You are an impartial judge. Decide whether the text fragment below is related to the instruction "
    "given before it. Judge only how closely its topic relates to the instruction; ignore grammar, "
    "coherence and how informative it is.\n\n"
    "In your explanation, point to the parts of the fragment that relate to the instruction.\n\n"
    "Rating scale: 0 = the fragment is unrelated to the instruction; 1 = it is somewhat related, but only "
    "minimally or indirectly on topic; 2 = it is clearly and directly related to the instruction.\n\n"
    "Instruction:\n<<<\n{instruction}\n>>>\n\n"
    "Text fragment:\n<<<\n{generation}\n>>>\n\n" + _CLOSING
)

FLUENCY_PROMPT = (
    "You are an impartial judge. Rate how fluent the text fragment below is. Judge fluency alone; ignore "
    "whether the fragment is complete, relevant, coherent with any wider context, or informative.\n\n"
    "In your explanation, describe its fluency briefly, noting any unnatural phrasing, awkward transitions, "
    "grammatical errors or repetitive structures that make it harder to read.\n\n"
    "Rating scale: 0 = not fluent, highly unnatural (for example incomprehensible or repetitive); "
    "1 = somewhat fluent, with noticeable errors or awkward phrasing; 2 = fluent and close to flawless.\n\n"
    "Text fragment:\n<<<\n{generation}\n>>>\n\n" + _CLOSING
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
        return [{"role": "user", "content": prompt}]

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
