"""The generated sources: a tiny random local LM, and a real OpenAI-compatible HTTP endpoint (StubChatServer)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from interpflow.data.sources import build_source
from interpflow.data.sources.base import LATENT_EVAL_COLUMNS, TRAIN_COLUMNS
from interpflow.data.sources.generated import GeneratedSource, parse_genre, parse_related_words
from interpflow.errors import ConfigError
from interpflow.providers.stub_server import StubChatServer

COUNTS = {"n_train_positive": 2, "n_train_negative": 2, "n_eval_positive": 2, "n_eval_negative": 2}
CONCEPTS = pd.DataFrame(
    {
        "concept_id": [3, 7],
        "concept": ["references to rivers", "Python list comprehensions"],
        "genre": ["text", "code"],
        "source": "inline",
    }
)
RELATED = "1. bank: a company that keeps money\n- current: happening now\nblank: nothing at all\nno colon here"


@pytest.fixture()
def instructions(tmp_path: Path) -> str:
    path = tmp_path / "instructions.json"
    path.write_text(json.dumps([f"Describe item number {i} in one sentence." for i in range(12)]))
    return str(path)


def check_frames(train: pd.DataFrame, evaluation: pd.DataFrame, generator: str, max_hard: int) -> None:
    """Columns, per-concept counts, labels and categories of generated frames (no empty responses)."""
    assert set(TRAIN_COLUMNS) <= set(train.columns) and set(LATENT_EVAL_COLUMNS) <= set(evaluation.columns)
    assert (train["generator"] == generator).all() and (evaluation["generator"] == generator).all()
    for frame in (train, evaluation):
        assert (frame["output"].str.strip() != "").all()
        assert ((frame["category"] == "positive") == (frame["label"] == 1)).all()
    for concept_id, genre in zip(CONCEPTS["concept_id"], CONCEPTS["genre"]):
        mine = train[train["concept_id"] == concept_id]
        assert mine["category"].value_counts().to_dict() == {"positive": 2, "negative": 2}
        assert (mine["genre"] == genre).all()
        mine = evaluation[evaluation["concept_id"] == concept_id]
        counts = mine["category"].value_counts().to_dict()
        assert counts["positive"] == 2 and counts["negative"] == 2
        assert counts.get("hard_negative", 0) <= max_hard
        assert set(counts) <= {"positive", "negative", "hard_negative"}
    assert set(train["concept_id"]) == set(evaluation["concept_id"]) == set(CONCEPTS["concept_id"])


def test_parse_related_words() -> None:
    assert parse_related_words(RELATED, 10) == [
        ("bank", "a company that keeps money"),
        ("current", "happening now"),
        ("blank", "nothing at all"),
    ]
    assert len(parse_related_words(RELATED + "\nBank: again", 10)) == 3
    assert len(parse_related_words(RELATED, 2)) == 2


def test_local_backend_with_tiny_model(tmp_path: Path, instructions: str) -> None:
    cfg = {
        "name": "local",
        "model": {
            "source": "tiny",
            "prompt_style": "chat",
            "completion_template": "{instruction}\n",
            "dtype": "float32",
            "tiny": {"arch": "llama", "n_layers": 2, "d_model": 32, "n_heads": 2, "seed": 0},
        },
        "instructions": instructions,
        **COUNTS,
        "n_hard_negative": 2,
        "max_new_tokens": 6,
        "temperature": 0.7,
        "batch_size": 8,
        "seed": 0,
    }
    source = build_source(cfg, tmp_path)
    assert source.concepts() is None
    source.check_ready()
    train, evaluation = source.train_data(CONCEPTS), source.latent_eval_data(CONCEPTS)
    assert (tmp_path / "generator_model" / "interpflow_model.json").exists()
    check_frames(train, evaluation, "local:tiny", max_hard=2)

    # A second job (a fresh source, as the eval_data rule builds) reads every answer from the
    # on-disk cache: same frames, and the model is never loaded.
    again = build_source(cfg, tmp_path)
    pd.testing.assert_frame_equal(again.train_data(CONCEPTS), train)
    pd.testing.assert_frame_equal(again.latent_eval_data(CONCEPTS), evaluation)
    assert again.backend._loaded is None


def scripted_answer(messages: list[dict]) -> str:
    prompt = messages[-1]["content"]
    if "Name up to" in prompt:
        return RELATED
    if "have anything to do with" in prompt:  # the sense check: "current" is judged related
        return "Yes, it does." if '"current"' in prompt else "No."
    if '"blank"' in prompt:
        return "   "  # an empty answer: the row must be dropped
    return "Answer " + hashlib.sha256(prompt.encode()).hexdigest()[:12]


@pytest.fixture()
def server() -> Iterator[StubChatServer]:
    with StubChatServer(reply=scripted_answer) as stub:
        yield stub


def openai_cfg(base_url: str, instructions: str, key_env: str) -> dict:
    return {
        "name": "openai",
        "model": "fake-model",
        "base_url": base_url,
        "api_key_env": key_env,
        "concurrency": 4,
        "max_retries": 1,  # a blank answer is asked twice, then dropped
        "backoff_s": 0.01,
        "price_per_1m": {"prompt": 0.15, "completion": 0.60},
        "instructions": instructions,
        **COUNTS,
        "n_hard_negative": 3,
        "max_new_tokens": 32,
        "temperature": 1.0,
        "seed": 0,
    }


def test_openai_backend_with_local_server(
    tmp_path: Path, instructions: str, server: StubChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERPFLOW_TEST_KEY", "local")
    cfg = openai_cfg(server.base_url, instructions, "INTERPFLOW_TEST_KEY")
    source = build_source(cfg, tmp_path)
    train, evaluation = source.train_data(CONCEPTS), source.latent_eval_data(CONCEPTS)
    check_frames(train, evaluation, "openai:fake-model", max_hard=3)
    # "bank" makes a hard negative; "current" fails the sense check; "blank" gets a blank answer and is dropped.
    hard = evaluation[evaluation["category"] == "hard_negative"]
    assert hard.groupby("concept_id").size().to_dict() == {3: 1, 7: 1}
    assert (hard["label"] == 0).all()
    # per concept: 8 positive/negative + 1 word list, then 3 sense checks, then 2 hard negatives, the
    # blank one ("blank") asked twice and never cached
    assert server.requests == 2 * (8 + 1 + 3 + 2 + 1)
    assert len(list((tmp_path / "llm_cache.cache").glob("??/*.json"))) == 2 * (8 + 1 + 3 + 1)

    again = build_source(cfg, tmp_path)
    train2, evaluation2 = again.train_data(CONCEPTS), again.latent_eval_data(CONCEPTS)
    assert server.requests == 30 + 2 * 2  # every answer came from the cache but the blank ones
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(evaluation, evaluation2)
    # the prompting baseline's steering prompt: one request per concept, naming it, answered as is
    prompts = again.steering_prompts(CONCEPTS)
    assert server.requests == 36 and len(prompts) == 2 and all(p.strip() == p and p for p in prompts)


def test_openai_missing_key_fails_before_any_request(
    tmp_path: Path, instructions: str, server: StubChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERPFLOW_TEST_MISSING_KEY", raising=False)
    source = build_source(openai_cfg(server.base_url, instructions, "INTERPFLOW_TEST_MISSING_KEY"), tmp_path)
    with pytest.raises(ConfigError, match="INTERPFLOW_TEST_MISSING_KEY"):
        source.check_ready()
    with pytest.raises(ConfigError):
        source.train_data(CONCEPTS)
    assert server.requests == 0


def test_no_positives_is_a_config_error(instructions: str) -> None:
    class Silent:
        backend_id = "silent"

        def check_ready(self) -> None:
            pass

        def complete(self, prompts: list[str]) -> list[str]:
            return ["" for _ in prompts]

    source = GeneratedSource({"instructions": instructions, **COUNTS, "n_hard_negative": 1, "seed": 0}, Silent())
    with pytest.raises(ConfigError, match="no positive examples for concept 'references to rivers'"):
        source.train_data(CONCEPTS)


def test_short_instruction_list_still_gives_distinct_prompts(tmp_path: Path) -> None:
    class Echo:
        backend_id = "echo"

        def check_ready(self) -> None:
            pass

        def complete(self, prompts: list[str]) -> list[str]:
            return list(prompts)

    path = tmp_path / "few.txt"
    path.write_text("Say hi.\nSay bye.\n")
    source = GeneratedSource({"instructions": str(path), **COUNTS, "n_hard_negative": 0, "seed": 0}, Echo())
    train, evaluation = source.train_data(CONCEPTS), source.latent_eval_data(CONCEPTS)
    assert len(train) == 8 and train["output"].is_unique and evaluation["output"].is_unique
    assert train["input"].nunique() == 1 and evaluation["input"].nunique() == 1  # one instruction per pool
    assert set(train["input"]) | set(evaluation["input"]) == {"Say hi.", "Say bye."}


def test_unknown_generator_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dataset, local, openai"):
        build_source({"name": "nope"}, tmp_path)


def test_parse_genre() -> None:
    assert parse_genre("Code.") == "code"
    assert parse_genre("I would say mathematics, or maybe text") == "math"  # the first one named
    assert parse_genre("poetry") == "text"


def test_genres_come_from_the_generator(tmp_path: Path, instructions: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPFLOW_TEST_KEY", "local")
    with StubChatServer(reply=lambda m: "code" if "Python" in m[-1]["content"] else "Text, I think") as server:
        source = build_source(openai_cfg(server.base_url, instructions, "INTERPFLOW_TEST_KEY"), tmp_path)
        assert source.assign_genres(CONCEPTS["concept"].tolist()) == ["text", "code"]
        assert server.requests == 2 and source.usage()["requests"] == 2


def test_training_and_evaluation_answer_disjoint_instructions(tmp_path: Path) -> None:
    """Every concept's training instructions are drawn from one pool and its evaluation (and hard
    negative) instructions from another, so no evaluation example answers a training instruction,
    of its own concept or of any other."""
    class Echo:
        backend_id = "echo"

        def check_ready(self) -> None:
            pass

        def complete(self, prompts: list[str]) -> list[str]:
            def answer(prompt: str) -> str:
                if prompt.startswith("Name up to"):
                    return RELATED  # word: meaning lines for hard negatives
                return "No" if prompt.startswith("Does the meaning") else prompt
            return [answer(p) for p in prompts]

    path = tmp_path / "many.txt"
    path.write_text("".join(f"Write sentence number {i}.\n" for i in range(30)))
    counts = {"n_train_positive": 6, "n_train_negative": 6, "n_eval_positive": 3, "n_eval_negative": 3}
    source = GeneratedSource({"instructions": str(path), **counts, "n_hard_negative": 2, "seed": 0}, Echo())
    train, evaluation = source.train_data(CONCEPTS), source.latent_eval_data(CONCEPTS)
    assert "hard_negative" in set(evaluation["category"])
    assert not set(train["input"]) & set(evaluation["input"])
    assert len(set(train["input"]) | set(evaluation["input"])) > 12  # the pools are used, not one instruction each


def test_a_renamed_run_asks_the_generator_nothing(tmp_path: Path, instructions: str, server: StubChatServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The API generator's answers live in <results_dir>/cache/generator, shared by run names."""
    from interpflow.preflight import data_source

    monkeypatch.setenv("INTERPFLOW_TEST_KEY", "local")
    generator = {**openai_cfg(server.base_url, instructions, "INTERPFLOW_TEST_KEY"), "n_hard_negative": 0}
    first = data_source({"results_dir": str(tmp_path), "run_name": "first", "generator": generator})
    train = first.train_data(CONCEPTS)
    asked = server.requests
    assert asked == 2 * 8
    second = data_source({"results_dir": str(tmp_path), "run_name": "renamed", "generator": generator})
    pd.testing.assert_frame_equal(second.train_data(CONCEPTS), train)
    assert server.requests == asked
    assert (tmp_path / "cache" / "generator" / "llm_cache.cache").is_dir()


def test_answers_cached_in_a_run_folder_are_adopted_once(tmp_path: Path, instructions: str, server: StubChatServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of the previous version cached its answers in <results>/<run>/generator: none is paid again."""
    from interpflow.preflight import data_source

    monkeypatch.setenv("INTERPFLOW_TEST_KEY", "local")
    generator = {**openai_cfg(server.base_url, instructions, "INTERPFLOW_TEST_KEY"), "n_hard_negative": 0}
    old_run_folder = tmp_path / "old_run" / "generator"
    train = build_source(generator, old_run_folder).train_data(CONCEPTS)  # the old layout: the run's own folder
    asked = server.requests
    source = data_source({"results_dir": str(tmp_path), "run_name": "old_run", "generator": generator})
    pd.testing.assert_frame_equal(source.train_data(CONCEPTS), train)
    assert server.requests == asked
    assert (old_run_folder / "llm_cache.cache" / ".copied-to-shared-cache").is_file()
