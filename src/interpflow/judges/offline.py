"""A deterministic judge that needs no LLM: sentence embeddings, perplexity and repetition.

Concept score: cosine similarity between the embeddings of the generation and of
the concept description, mapped to 0 below t1, 1 in [t1, t2), 2 at or above t2.
Instruction score: the same with the instruction text.
Fluency score: 2 when perplexity <= good and repetition <= good, 1 when both are
within the "ok" bounds, else 0.  Repetition is 1 - distinct/total word 3-grams
(0 for texts under 3 words).  An unknown (NaN) perplexity is ignored, so only
repetition decides.  Empty or whitespace-only generations score 0 on all three.

Default thresholds (calibrated with the packaged all-MiniLM-L6-v2, normalised
embeddings).  Four concept descriptions ("references to the ocean or sea life",
"Python source code", "expressions of gratitude or thanks", "music and musical
instruments") were compared with 6 hand-written on-concept sentences each and
with 28 off-concept sentences each (10 generic chat answers plus the other
concepts' sentences):

* off-concept similarities: -0.079 to 0.187 (95th percentile 0.138);
* on-concept sentences: 0.206 to 0.704 (median 0.367); 20 of 24 are >= 0.25,
  the other four being two plain thank-you sentences (0.213, 0.222), a pandas
  script described in prose (0.206) and a pancake recipe sprinkled with sea
  words (0.232);
* mixed texts (an answer to an unrelated instruction with the concept woven
  in): -0.02 to 0.33 (the lowest: a fact about Paris followed by a one-line
  thank-you).

So concept_thresholds = [0.20, 0.25]: every off-concept sentence scores 0, most
clearly on-concept text scores 2, and mixed or weakly on-concept text tends to 1.
The two classes overlap nearly (0.187 vs 0.206), so this is a coarse proxy for an
LLM judge, not a replacement.

For instructions, eight instructions were each compared with a direct answer, a
loosely related sentence, and 19 sentences written for other purposes (152
pairs).  Direct answers: 0.468 to 0.879; loosely related: 0.303 to 0.734;
the 152 other pairs: median 0.059, 95th percentile 0.215, but a few neighbours
of the topic reach 0.38 (a bread recipe for "Write a short recipe for pancakes",
a French Revolution fact for "What is the capital of France?").  Hence
instruction_thresholds = [0.25, 0.45]: unrelated text scores 0, neighbouring or
loose text 1, direct answers 2.

Fluency defaults, for short generations of a ~135M-parameter chat model (set
by judgement, not measured here): perplexity_thresholds = [30, 120], since a
model's perplexity on its own fluent samples usually stays well under 30 while
broken or degenerate steered text goes far higher, and 120 leaves room for odd
but readable text; max_repetition = [0.2, 0.5], i.e. at most 20% / 50% of the
word 3-grams are repeats.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from interpflow.embeddings import SentenceEmbedder, minilm_path
from interpflow.errors import ConfigError
from interpflow.judges.base import JudgeItem, JudgeScores

DEFAULTS: dict[str, Any] = {
    "name": "offline",
    "embedding_model": None,
    "concept_thresholds": [0.20, 0.25],
    "instruction_thresholds": [0.25, 0.45],
    "fluency": {"perplexity_thresholds": [30.0, 120.0], "max_repetition": [0.2, 0.5]},
}


EMPTY_RAW = "empty generation"


def repetition(text: str) -> float:
    """Share of repeated word 3-grams: 1 - distinct / total (0 for texts under 3 words)."""
    words = text.lower().split()
    if len(words) < 3:
        return 0.0
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return 1.0 - len(set(grams)) / len(grams)


def bucket(value: float, thresholds: tuple[float, float]) -> float:
    """Map a similarity to 0 (below t1), 1 (from t1 up to t2) or 2 (at least t2)."""
    low, high = thresholds
    if value >= high:
        return 2.0
    return 1.0 if value >= low else 0.0


def fluency_score(
    perplexity: float, rep: float, ppl_limits: tuple[float, float], rep_limits: tuple[float, float]
) -> float:
    """2 when both measures are within the "good" limits, 1 within the "ok" limits, else 0."""
    for score, ppl_max, rep_max in ((2.0, ppl_limits[0], rep_limits[0]), (1.0, ppl_limits[1], rep_limits[1])):
        ppl_ok = math.isnan(perplexity) or perplexity <= ppl_max
        if ppl_ok and rep <= rep_max:
            return score
    return 0.0


def _pair(cfg: dict[str, Any], key: str, where: str) -> tuple[float, float]:
    """Read a [low, high] threshold pair, checking it is two numbers in increasing order."""
    value = cfg.get(key)
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) for v in value)
    if not ok or value[0] > value[1]:
        raise ConfigError(
            f"{where}{key} must be two numbers [low, high] with low <= high (got {value!r}); fix the judge config"
        )
    return float(value[0]), float(value[1])


class OfflineJudge:
    """Deterministic embedding-and-perplexity judge; `cache_dir` is accepted but unused."""

    proxy = True  # similarities and perplexity standing in for an LLM's rubric grades

    def __init__(self, cfg: dict[str, Any], cache_dir: Path | None = None) -> None:
        unknown = sorted(set(cfg) - set(DEFAULTS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown} in the offline judge config; allowed keys: {sorted(DEFAULTS)}"
            )
        merged = {**DEFAULTS, **cfg}
        fluency = {**DEFAULTS["fluency"], **(merged["fluency"] or {})}
        self.concept_thresholds = _pair(merged, "concept_thresholds", "judge.")
        self.instruction_thresholds = _pair(merged, "instruction_thresholds", "judge.")
        self.ppl_limits = _pair(fluency, "perplexity_thresholds", "judge.fluency.")
        self.rep_limits = _pair(fluency, "max_repetition", "judge.fluency.")
        self.model_path = self._model_path(merged["embedding_model"])
        self.judge_id = f"offline:{Path(self.model_path).name if merged['embedding_model'] else 'all-MiniLM-L6-v2'}"
        self.embedded_texts = 0

        self.model = SentenceEmbedder(self.model_path)

    @staticmethod
    def _model_path(embedding_model: str | None) -> str:
        """The packaged MiniLM folder when None, else the given local folder."""
        if embedding_model is None:
            return minilm_path()
        if not Path(embedding_model).is_dir():
            raise ConfigError(
                f"judge.embedding_model {embedding_model!r} is not a local folder; "
                "point it at a sentence-transformers model folder or set it to null"
            )
        return str(embedding_model)

    def _embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Embed each distinct text once (normalised), returning text -> vector."""
        unique = sorted(set(texts))
        if not unique:
            return {}
        vectors = self.model.encode(unique, batch_size=64, unit=True)
        self.embedded_texts += len(unique)
        return dict(zip(unique, vectors))

    def score(self, items: list[JudgeItem]) -> list[JudgeScores]:
        """Score all items with one batched embedding pass over their distinct texts."""
        live = [item for item in items if item.generation.strip()]
        vectors = self._embed(
            [t for item in live for t in (item.generation, item.concept, item.instruction)]
        )
        results = []
        for item in items:
            if not item.generation.strip():
                results.append(JudgeScores(0.0, 0.0, 0.0, EMPTY_RAW, EMPTY_RAW, EMPTY_RAW))
                continue
            gen = vectors[item.generation]
            concept_cos = float(np.dot(gen, vectors[item.concept]))
            instruction_cos = float(np.dot(gen, vectors[item.instruction]))
            rep = repetition(item.generation)
            ppl = float(item.perplexity)
            results.append(
                JudgeScores(
                    concept_score=bucket(concept_cos, self.concept_thresholds),
                    instruction_score=bucket(instruction_cos, self.instruction_thresholds),
                    fluency_score=fluency_score(ppl, rep, self.ppl_limits, self.rep_limits),
                    concept_raw=f"cos={concept_cos:.3f}",
                    instruction_raw=f"cos={instruction_cos:.3f}",
                    fluency_raw=f"ppl={ppl:.1f} rep={rep:.3f}",
                )
            )
        return results

    def usage(self) -> dict[str, Any]:
        """No API is used: zero requests and cost; also how many texts were embedded."""
        return {
            "requests": 0,
            "cached": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "embedded_texts": self.embedded_texts,
        }
