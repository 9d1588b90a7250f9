"""An LLM judge that asks an OpenAI-compatible chat model for the three AxBench scores.

Each generation is graded with three separate rubric prompts (concept,
instruction relevance, fluency).  Every prompt asks for a short reason and a
final line "Rating: [[n]]" with n in 0, 1, 2.

Replies are not capped by default (AxBench sends no limit); a reply the server cut at a token
limit (finish_reason "length") is asked again, up to `length_retries` times, each with twice the
previous limit.  The rating is read as AxBench reads it (what follows the last "Rating:"), else
from the last "[[n]]".  A reply still unreadable is kept verbatim in the raw column, scored 0 (as
AxBench does) and counted: per generation in the judged table, per method in the leaderboard, and
`max_unparsed_share` stops the run's evaluation when too many are.
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
    "max_tokens": None,
    "length_retries": 2,
    "max_unparsed_share": 0.05,
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
LOWEST, HIGHEST = 0.0, 2.0


def axbench_rating(text: str | None) -> float | None:
    """The rating as AxBench's judge reads it (evaluators/lm_judge.py, `_get_rating_from_completion`
    and its range check): the first line after the last "Rating:", with every "[" and "]" removed,
    then trailing dots, surrounding quotes and asterisks stripped, read by Python's float(). None
    where AxBench falls back to its default of 0: no "Rating:", not a number, or outside 0-2."""
    if not text:
        return None
    _, marker, after = text.rpartition("Rating:")
    if not marker:
        return None
    line = after.strip().split("\n")[0].strip()
    line = line.replace("[", "").replace("]", "")
    line = line.rstrip(".").strip('"').strip("'").strip("*").strip()
    try:
        value = float(line)
    except ValueError:
        return None
    return value + 0.0 if LOWEST <= value <= HIGHEST else None  # + 0.0: -0.0 becomes 0.0


def bracket_rating(text: str | None) -> float | None:
    """The last "[[...]]" of the reply when it holds a plain number (no sign) from 0 to 2, else None."""
    matches = _BRACKETS.findall(text or "")
    if not matches or not _NUMBER.fullmatch(matches[-1].strip()):
        return None
    value = float(matches[-1])
    return value if LOWEST <= value <= HIGHEST else None


def parse_rating(text: str | None) -> float | None:
    """The rating of a judge reply: AxBench's reading first, so that wherever AxBench reads a rating
    we read the same; where it would fall back to 0, the last "[[n]]" (our prompts ask for
    "Rating: [[n]]"; "Rating: [[2]] - fully" is 0 for AxBench, 2 here). None when neither reads one."""
    value = axbench_rating(text)
    return value if value is not None else bracket_rating(text)


def _checked_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill in defaults and reject unknown keys or bad values with a ConfigError."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in the openai judge config; allowed keys: {sorted(DEFAULTS)}"
        )
    merged = {**DEFAULTS, **cfg}
    limit = merged["max_tokens"]
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"judge.max_tokens must be a positive integer or null for no limit (got {limit!r})")
    if not isinstance(merged["length_retries"], int) or merged["length_retries"] < 0:
        raise ConfigError(f"judge.length_retries must be an integer >= 0 (got {merged['length_retries']!r})")
    share = merged["max_unparsed_share"]
    if not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ConfigError(f"judge.max_unparsed_share must be a number from 0 to 1 (got {share!r})")
    if not isinstance(merged["temperature"], (int, float)) or merged["temperature"] < 0:
        raise ConfigError(f"judge.temperature must be a number >= 0 (got {merged['temperature']!r})")
    if not isinstance(merged["concurrency"], int):
        raise ConfigError(f"judge.concurrency must be an integer (got {merged['concurrency']!r})")
    return merged


class OpenAIJudge:
    """Score generations with an OpenAI-compatible chat model; answers are cached on disk."""

    proxy = False  # an LLM grading AxBench's rubrics

    def __init__(self, cfg: dict[str, Any], cache_dir: Path) -> None:
        self.cfg = _checked_config(cfg)
        self.judge_id = f"openai:{self.cfg['model']}"
        self.unparsed = self.length_retries = self.cut_replies = 0
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

    def _ask(self, requests: list[Messages]) -> list[str]:
        """The reply to every request; one cut at the token limit is asked again, with twice the limit
        (and the next sample index, so that no limit at all still asks anew), `length_retries` times."""
        temperature, limit = float(self.cfg["temperature"]), self.cfg["max_tokens"]
        replies = self.client.complete_many(requests, temperature=temperature, max_tokens=limit)
        for attempt in range(1, self.cfg["length_retries"] + 1):
            cut = [i for i, reply in enumerate(replies) if reply.finish_reason == "length"]
            if not cut:
                break
            self.length_retries += len(cut)
            limit = None if limit is None else 2 * limit
            again = self.client.complete_many([requests[i] for i in cut], temperature=temperature,
                                              max_tokens=limit, sample_index=attempt)
            for i, reply in zip(cut, again):
                replies[i] = reply
        self.cut_replies += sum(reply.finish_reason == "length" for reply in replies)
        return [reply.text for reply in replies]

    def score(self, items: list[JudgeItem]) -> list[JudgeScores]:
        """Score all items; empty generations get 0 on all three without an API call."""
        to_ask = [i for i, item in enumerate(items) if item.generation.strip()]
        replies = self._ask([m for i in to_ask for m in self._prompts(items[i])])
        raw_by_item = {i: replies[3 * n : 3 * n + 3] for n, i in enumerate(to_ask)}

        scores = []
        for i in range(len(items)):
            if i not in raw_by_item:
                scores.append(JudgeScores(0.0, 0.0, 0.0, EMPTY_RAW, EMPTY_RAW, EMPTY_RAW))
                continue
            ratings = [parse_rating(raw) for raw in raw_by_item[i]]
            unparsed = sum(rating is None for rating in ratings)
            self.unparsed += unparsed
            concept, instruction, fluency = (0.0 if rating is None else rating for rating in ratings)
            scores.append(JudgeScores(concept, instruction, fluency, *raw_by_item[i], unparsed=unparsed))
        return scores

    def usage(self) -> dict[str, Any]:
        """API totals (requests, cached, tokens, cost_usd) plus the count of unreadable ratings, of
        requests asked again because the reply was cut at the token limit, and of replies still cut."""
        return {**self.client.usage(), "unparsed": self.unparsed, "length_retries": self.length_retries,
                "cut_replies": self.cut_replies}
