"""The `local` and `openai` sources: examples written by a language model for any concept list,
following AxBench's recipe. Training and evaluation examples answer instructions from two disjoint
pools of the instruction list (`instruction_pools`). Per concept, with instructions sampled from
each pool by default_rng(seed + concept_id):
positives (responses that work the concept in), negatives (responses that avoid it) and, for
evaluation only, hard negatives (responses using a concept-related word in an unrelated sense; the
words come from a first query answered as "word: other meaning" lines, and each sense is kept only
when the model, asked again, says it has nothing to do with the concept). Negatives are kept per
concept, never in the shared -1 pool. Two extra columns say what wrote each row: `generator` (the
backend and model) and `generator_prompt` (the template's name and a hash of its text).

A backend has `backend_id`, `check_ready()` and `complete(prompts) -> texts` (one user message per
prompt): `LocalLMBackend` (a local Hugging Face causal LM) or `OpenAIBackend` (an OpenAI-compatible
chat endpoint, answers cached on disk).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from interpflow.data.instructions import instruction_pools, load_instructions
from interpflow.data.sources.base import LATENT_EVAL_COLUMNS, TRAIN_COLUMNS
from interpflow.errors import ConfigError
from interpflow.providers.cache import CallCache

GENERATOR_COLUMN = "generator"
PROMPT_COLUMN = "generator_prompt"

# --- prompts (one user message each) --------------------------------------------------------
POSITIVE_PROMPT = (
    'Write a response to the instruction below. Work the concept "{concept}" into it in a natural '
    "way, so that the concept clearly shows up in the text. {hint}Reply with the response only.\n\n"
    "Instruction: {instruction}"
)
NEGATIVE_PROMPT = (
    'Write a response to the instruction below. The response must not mention, refer to or hint at "{concept}" '
    "in any way. Reply with the response only.\n\nInstruction: {instruction}"
)
RELATED_WORDS_PROMPT = (
    'Name up to {n} words that are associated with "{concept}" but that also have a common meaning '
    "which has nothing to do with it. Put each on its own line in the form `word: the unrelated meaning` "
    "and write nothing else."
)
DISTINCT_PROMPT = (
    'Does the meaning "{meaning}" of the word "{word}" have anything to do with "{concept}"? Answer yes or no.'
)
HARD_NEGATIVE_PROMPT = (
    'Write a response to the instruction below that uses the word "{word}" in the sense of "{meaning}". '
    'Do not mention, refer to or hint at "{concept}". Reply with the response only.\n\n'
    "Instruction: {instruction}"
)
# AxBench's request for a prompt-steering instruction (utils/dataset.py), in our words
STEERING_PROMPT_PROMPT = (
    'Write a prompt that steers a language model\'s answers toward "{concept}". The prompt must tell the '
    "model to bring this concept into every answer, even where it does not fit the question or make sense. "
    "It may include a few short examples of such answers. Reply with the prompt only."
)


def prompt_id(name: str, template: str) -> str:
    """`name@hash`: which template wrote a row, and which version of its text."""
    return f"{name}@{hashlib.sha256(template.encode()).hexdigest()[:8]}"


PROMPT_IDS = {"positive": prompt_id("positive", POSITIVE_PROMPT), "negative": prompt_id("negative", NEGATIVE_PROMPT),
              "hard_negative": prompt_id("hard_negative", HARD_NEGATIVE_PROMPT)}
GENRE_PROMPT = (
    'Which kind of text would best show the concept "{concept}": ordinary prose, computer code, or mathematics? '
    "Answer with one word: text, code or math."
)


def parse_genre(answer: str) -> str:
    """The first of text / code / math the answer names; text when it names none."""
    found = [(match.start(), match.group(1)) for match in re.finditer(r"\b(text|code|math)", answer.lower())]
    return min(found)[1] if found else "text"


# (category, label, split, count key), in the order instructions are handed out
PLAN = [
    ("positive", 1, "train", "n_train_positive"),
    ("positive", 1, "eval", "n_eval_positive"),
    ("negative", 0, "train", "n_train_negative"),
    ("negative", 0, "eval", "n_eval_negative"),
]
GENRE_HINTS = {
    "code": "Where it fits, include a short code snippet. ",
    "math": "Where it fits, include some mathematical notation or a short derivation. ",
}


def make_distinct(prompts: list[str]) -> list[str]:
    """Mark repeated prompts (an instruction list shorter than the counts) so that each gets its own answer."""
    seen: dict[str, int] = {}
    distinct = []
    for prompt in prompts:
        k = seen[prompt] = seen.get(prompt, 0) + 1
        distinct.append(prompt if k == 1 else f"{prompt}\n\n(Variant {k}: answer differently from any earlier try.)")
    return distinct


def parse_related_words(text: str, limit: int) -> list[tuple[str, str]]:
    """(word, other meaning) pairs from lines like `- word: meaning`, at most `limit`, without repeats."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", line)
        if ":" not in line:
            continue
        word, meaning = (part.strip().strip("*`\"'").strip() for part in line.split(":", 1))
        if word and meaning and len(word.split()) <= 3 and word.lower() not in seen:
            seen.add(word.lower())
            pairs.append((word, meaning))
        if len(pairs) == limit:
            break
    return pairs


class Backend(Protocol):
    backend_id: str

    def check_ready(self) -> None:
        """Raise ConfigError before any work if the backend cannot run."""

    def complete(self, prompts: list[str]) -> list[str]:
        """One answer per prompt (each prompt is a single user message), in order."""


class LocalLMBackend:
    """A local Hugging Face causal LM, prepared once into cfg["prepared_dir"] and loaded on first use."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.model_cfg = {"name": "generator", **cfg["model"]}
        self.prepared_dir = Path(cfg["prepared_dir"])
        self.backend_id = f"local:{self.model_cfg.get('id') or self.model_cfg['source']}"
        self._loaded: tuple | None = None

    def check_ready(self) -> None:
        from interpflow.models.loading import MODEL_SOURCES

        source = self.model_cfg.get("source")
        if source not in ("hub", *MODEL_SOURCES):
            raise ConfigError(f"unknown generator model source {source!r}; known: hub, {', '.join(MODEL_SOURCES)}")
        if source == "hub" and not self.model_cfg.get("id"):
            raise ConfigError("generator.model.source is `hub` but generator.model.id is empty")

    def _model(self) -> tuple:
        from interpflow.models.loading import MANIFEST, load_model, prepare_model

        if self._loaded is None:
            if not (self.prepared_dir / MANIFEST).exists():
                prepare_model(self.model_cfg, self.prepared_dir)
            self._loaded = load_model(self.prepared_dir, dtype=self.model_cfg.get("dtype", "float32"))
        return self._loaded

    def complete(self, prompts: list[str]) -> list[str]:
        """Answers from the on-disk cache where present; the rest generated in one batched pass and cached."""
        from interpflow.models.formatting import prompt_ids
        from interpflow.models.generation import decode, generate
        from interpflow.providers.cache import key_for

        if not prompts:
            return []
        cache = CallCache(self.prepared_dir.parent / "local_llm_cache.sqlite")
        params = {k: self.cfg.get(k) for k in ("max_new_tokens", "temperature", "seed")}
        keys = [key_for(provider="local", model=self.model_cfg, prompt=p, params=params) for p in prompts]
        answers = [cache.get(k) for k in keys]
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            model, tokenizer = self._model()
            ids = [prompt_ids(tokenizer, self.model_cfg, prompts[i]) for i in missing]
            texts = decode(tokenizer, generate(
                model,
                tokenizer,
                ids,
                intervene=None,
                max_new_tokens=int(self.cfg["max_new_tokens"]),
                batch_size=int(self.cfg.get("batch_size", 16)),
                temperature=float(self.cfg.get("temperature", 0.0)),
                seed=int(self.cfg.get("seed", 0)),
            ))
            for i, text in zip(missing, texts):
                cache.put(keys[i], text)
                answers[i] = text
        return answers


CACHE_NAME = "llm_cache.sqlite"  # the folder llm_cache.cache/ (providers/cache.py)


def adopt_old_cache(old_dir: Path, cache: CallCache) -> None:
    """Copy the answers a run cached in its own folder (before the cache was shared) into `cache`,
    once: a marker in the old folder records that it was done. The old entries are kept."""
    old_path = old_dir / CACHE_NAME
    old_folder = old_path.with_suffix(".cache")
    if not (old_folder.is_dir() or old_path.is_file()) or old_folder.resolve() == cache.folder.resolve():
        return
    marker = old_folder / ".copied-to-shared-cache"
    if marker.exists():
        return
    old = CallCache(old_path)  # reads an even older SQLite file into its folder first
    for entry in old.folder.glob("??/*.json"):
        try:
            key = json.loads(entry.read_text(encoding="utf-8"))["key"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        value = old.get(key)
        if value is not None and cache.get(key) is None:
            cache.put(key, value)
    marker.touch()


class OpenAIBackend:
    """An OpenAI-compatible chat endpoint; every answer is cached in cache_dir/llm_cache.cache/ (shared
    by all runs); answers an older version cached in the run's own folder (old_cache_dir) are adopted."""

    def __init__(self, cfg: dict, cache_dir: Path, old_cache_dir: Path | None = None):
        self.cfg = cfg
        self.cache_path = Path(cache_dir) / CACHE_NAME
        self.old_cache_dir = Path(old_cache_dir) if old_cache_dir is not None else None
        self.backend_id = f"openai:{cfg['model']}"
        self._client = None

    @property
    def client(self):
        """The ChatClient, built on first use (building it fails with ConfigError when the key is unset)."""
        from interpflow.providers.openai_chat import ChatClient, require_api_key

        if self._client is None:
            require_api_key(self.cfg.get("api_key_env", "OPENAI_API_KEY"), "generator")
            cache = CallCache(self.cache_path)
            if self.old_cache_dir is not None:
                adopt_old_cache(self.old_cache_dir, cache)
            self._client = ChatClient(
                self.cfg["model"],
                base_url=self.cfg.get("base_url"),
                api_key_env=self.cfg.get("api_key_env", "OPENAI_API_KEY"),
                concurrency=int(self.cfg.get("concurrency", 8)),
                timeout_s=float(self.cfg.get("timeout_s", 60)),
                max_retries=int(self.cfg.get("max_retries", 5)),
                backoff_s=float(self.cfg.get("backoff_s", 1.0)),
                cache=cache,
                price_per_1m=self.cfg.get("price_per_1m"),
                config_section="generator",
            )
        return self._client

    def check_ready(self) -> None:
        self.client.check_ready()

    def complete(self, prompts: list[str]) -> list[str]:
        if not prompts:
            return []
        messages = [[{"role": "user", "content": p}] for p in prompts]
        answers = self.client.complete_many(
            messages, temperature=float(self.cfg.get("temperature", 1.0)), max_tokens=int(self.cfg["max_new_tokens"])
        )
        return [a.text for a in answers]

    def usage(self) -> dict:
        """Requests, cached answers, tokens and cost so far (empty before the first request)."""
        return self._client.usage() if self._client is not None else {}


@dataclass
class _Job:
    """One generation request and the row its answer fills."""

    prompt: str
    row: dict  # concept_id, input, label, category, genre, split (train | eval)


class GeneratedSource:
    """A DataSource that asks `backend` to write examples for whatever concepts it is given."""

    def __init__(self, cfg: dict, backend: Backend):
        self.cfg = cfg
        self.backend = backend
        self._memo: dict[tuple, tuple[pd.DataFrame, pd.DataFrame]] = {}

    def concepts(self) -> None:
        return None

    def check_ready(self) -> None:
        self.backend.check_ready()

    def assign_genres(self, concepts: list[str]) -> list[str]:
        """Each concept's genre (text, code or math), as the generator model answers the genre prompt."""
        self.check_ready()
        return [parse_genre(answer) for answer in self.backend.complete([GENRE_PROMPT.format(concept=c) for c in concepts])]

    def usage(self) -> dict:
        """The backend's API totals (requests, cached, retries, tokens, cost_usd); {} for a local model."""
        return self.backend.usage() if hasattr(self.backend, "usage") else {}

    def steering_prompts(self, concepts: pd.DataFrame) -> list[str]:
        """One prompt-steering instruction per concept, written by the generator model (as AxBench's
        prompting baseline has gpt-4o-mini write them)."""
        self.check_ready()
        answers = self.backend.complete([STEERING_PROMPT_PROMPT.format(concept=c) for c in concepts["concept"]])
        return [answer.strip() for answer in answers]

    def train_data(self, concepts: pd.DataFrame) -> pd.DataFrame:
        return self._frames(concepts)[0]

    def latent_eval_data(self, concepts: pd.DataFrame) -> pd.DataFrame:
        return self._frames(concepts)[1]

    # --- generation -----------------------------------------------------------------------
    def _count(self, key: str) -> int:
        return int(self.cfg.get(key, 0))

    def _instructions_for(self, concept_id: int, pools: dict[str, list[str]]) -> dict[str, list[str]]:
        """Per split, the instructions in the order PLAN hands them out (the evaluation split's
        hard negatives last); distinct while the split's pool lasts."""
        rng = np.random.default_rng(int(self.cfg.get("seed", 0)) + concept_id)
        picked = {}
        for split, pool in pools.items():
            needed = sum(self._count(key) for _, _, s, key in PLAN if s == split)
            needed += self._count("n_hard_negative") if split == "eval" else 0
            rounds = max(-(-needed // len(pool)), 1)
            order = np.concatenate([rng.permutation(len(pool)) for _ in range(rounds)])
            picked[split] = [pool[i] for i in order[:needed]]
        return picked

    def _first_jobs(self, concept: dict, picked: dict[str, list[str]]) -> list[_Job]:
        """Positive and negative jobs for one concept (train split first, then eval)."""
        base = {"concept_id": concept["concept_id"], "genre": concept["genre"]}
        jobs, position = [], {split: 0 for split in picked}
        for category, label, split, key in PLAN:
            template = POSITIVE_PROMPT if label else NEGATIVE_PROMPT
            for instruction in picked[split][position[split] : position[split] + self._count(key)]:
                prompt = template.format(
                    concept=concept["concept"], instruction=instruction, hint=GENRE_HINTS.get(concept["genre"], "")
                )
                row = {**base, "input": instruction, "label": label, "category": category, "split": split}
                jobs.append(_Job(prompt, row))
            position[split] += self._count(key)
        return jobs

    def _distinct_senses(self, concepts: list[dict], word_answers: list[str]) -> list[list[tuple[str, str]]]:
        """Per concept, the (word, meaning) pairs the generator confirms have nothing to do with the concept."""
        pairs = [parse_related_words(answer, self._count("n_hard_negative")) for answer in word_answers]
        checks = [DISTINCT_PROMPT.format(word=w, meaning=m, concept=c["concept"]) for c, p in zip(concepts, pairs) for w, m in p]
        verdicts = iter(self.backend.complete(checks))
        return [[pair for pair in p if next(verdicts).strip().lower().startswith("no")] for p in pairs]

    def _hard_negative_jobs(self, concept: dict, pairs: list[tuple[str, str]], picked: list[str]) -> list[_Job]:
        """One job per distinct (word, meaning), on the evaluation split's last n_hard_negative instructions."""
        n_hard = self._count("n_hard_negative")
        base = {"concept_id": concept["concept_id"], "genre": concept["genre"], "label": 0}
        return [
            _Job(
                HARD_NEGATIVE_PROMPT.format(word=word, meaning=meaning, concept=concept["concept"], instruction=instr),
                {**base, "input": instr, "category": "hard_negative", "split": "eval"},
            )
            for (word, meaning), instr in zip(pairs, picked[len(picked) - n_hard :])
        ]

    def _check_positives(self, frame: pd.DataFrame, concepts: list[dict]) -> None:
        """Every requested split of every concept must keep at least one positive (empty answers are dropped)."""
        for c in concepts:
            mine = frame[frame["concept_id"] == c["concept_id"]]
            for split, key in (("train", "n_train_positive"), ("eval", "n_eval_positive")):
                if self._count(key) and not ((mine["split"] == split) & (mine["label"] == 1)).any():
                    raise ConfigError(
                        f"generator produced no positive examples for concept '{c['concept']}'; "
                        f"check the generator model/prompts (its {split} split has none)"
                    )

    def _frames(self, concepts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, latent eval) frames, generated once per concept list and then reused."""
        records = [
            {"concept_id": int(r.concept_id), "concept": str(r.concept), "genre": str(r.genre)}
            for r in concepts.itertuples(index=False)
        ]
        key = tuple(tuple(r.values()) for r in records)
        if key not in self._memo:
            self._memo[key] = self._generate(records)
        train, evaluation = self._memo[key]
        return train.copy(), evaluation.copy()

    def _generate(self, concepts: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Two rounds of requests: positives, negatives and related-word lists; then hard negatives."""
        self.check_ready()
        train_pool, eval_pool = instruction_pools(load_instructions(str(self.cfg.get("instructions", "demo"))))
        pools = {"train": train_pool, "eval": eval_pool}
        picked = {c["concept_id"]: self._instructions_for(c["concept_id"], pools) for c in concepts}
        jobs = [job for c in concepts for job in self._first_jobs(c, picked[c["concept_id"]])]
        n_hard = self._count("n_hard_negative")
        word_prompts = [RELATED_WORDS_PROMPT.format(n=n_hard, concept=c["concept"]) for c in concepts] if n_hard else []
        answers = self.backend.complete(make_distinct([j.prompt for j in jobs]) + word_prompts)
        outputs, word_answers = answers[: len(jobs)], answers[len(jobs) :]

        hard_jobs = [
            job
            for c, pairs in zip(concepts, self._distinct_senses(concepts, word_answers))
            for job in self._hard_negative_jobs(c, pairs, picked[c["concept_id"]]["eval"])
        ]
        jobs += hard_jobs
        outputs += self.backend.complete(make_distinct([j.prompt for j in hard_jobs]))

        generator = self.backend.backend_id
        rows = [{**j.row, "output": out.strip(), GENERATOR_COLUMN: generator, PROMPT_COLUMN: PROMPT_IDS[j.row["category"]]}
                for j, out in zip(jobs, outputs)]
        extra = [GENERATOR_COLUMN, PROMPT_COLUMN]
        frame = pd.DataFrame([r for r in rows if r["output"]], columns=[*TRAIN_COLUMNS, *extra, "split"])
        self._check_positives(frame, concepts)
        frame = frame.astype({"concept_id": int, "label": int})
        train = frame[frame["split"] == "train"][[*TRAIN_COLUMNS, *extra]].reset_index(drop=True)
        evaluation = frame[frame["split"] == "eval"][[*LATENT_EVAL_COLUMNS, *extra]].reset_index(drop=True)
        return train, evaluation
