"""Unit tests for rating parsing, the call cache, the chat client and the OpenAI judge."""

from __future__ import annotations

import json
import math
import multiprocessing
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from interpflow.errors import ConfigError
from interpflow.judges import build_judge
from interpflow.judges.base import JudgeItem
from interpflow.judges.openai_judge import OpenAIJudge, parse_rating
from interpflow.providers.cache import CallCache, key_for
from interpflow.providers.openai_chat import ChatClient
from interpflow.providers.stub_server import StubChatServer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The concept is clear.\nRating: [[2]]", 2.0),
        ("Rating: [[0]]", 0.0),
        ("Rating: [[1]]", 1.0),
        ("Rating: [[ 1 ]]", 1.0),
        ("Rating: [[1.5]]", 1.5),
        ("Rating: [[2.0]]", 2.0),
        ("First I thought [[0]], but on reflection: Rating: [[2]]", 2.0),
        ("Rating: [[2]]\nCorrection: Rating: [[1]]", 1.0),
        # AxBench's reading: what follows the last "Rating:", brackets, dots, quotes and asterisks dropped
        ("Rating: 2", 2.0),
        ("Fluent enough.\nRating: 1\n", 1.0),
        ("Rating: [2]", 2.0),
        ("Rating: **2**.", 2.0),
        ('Rating: "1"', 1.0),
        ("Rating: [[2", 2.0),  # cut after the digit: AxBench reads 2
        ("Rating: [[-0]]", 0.0),
        ("Rating: 2\n\nNote: a [[0]] would mean absent.", 2.0),  # AxBench's reading wins over a later [[n]]
        # where AxBench falls back to its 0, the last [[n]]
        ("Rating: [[2]] - fully worked in", 2.0),
        ("I would give it [[1]]", 1.0),
        ("Rating: [[1]] then a bad final [[3]]", None),
        ("Rating: [[3]]", None),
        ("Rating: [[2.5]]", None),
        ("Rating: [[-1]]", None),
        ("Rating: [[n]]", None),
        ("Rating: [[]]", None),
        ("Rating: [[one]]", None),
        ("Rating: [[1/2]]", None),
        ("rating: 2", None),
        ("The concept appears in the second sentence, where the", None),  # cut before any rating
        ("Rating: nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_rating(text: str | None, expected: float | None) -> None:
    assert parse_rating(text) == expected


def test_key_for_is_stable_and_order_independent() -> None:
    messages = [{"role": "user", "content": "hi"}]
    a = key_for(provider="p", model="m", messages=messages, temperature=0.0, sample_index=0)
    b = key_for(sample_index=0, temperature=0.0, messages=messages, model="m", provider="p")
    assert a == b
    assert len(a) == 64 and all(c in "0123456789abcdef" for c in a)
    # Pinned value: the key must not change between versions, or old caches go unused.
    assert key_for(model="m", prompt="x") == (
        "81f6468c39f5e99e8dfebf5967e2f23fac4fd692542f5c189118d7d2268f2adf"
    )
    assert CallCache.key_for(model="m") == key_for(model="m")


def test_key_for_differs_when_any_part_differs() -> None:
    base = {
        "provider": "openai_chat",
        "base_url": None,
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
        "max_tokens": 256,
        "sample_index": 0,
    }
    variants = [
        {"provider": "other"},
        {"base_url": "http://localhost:8000/v1"},
        {"model": "gpt-4o"},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"temperature": 0.7},
        {"max_tokens": 128},
        {"sample_index": 1},
    ]
    keys = {key_for(**base)} | {key_for(**{**base, **change}) for change in variants}
    assert len(keys) == 1 + len(variants)


def test_cache_roundtrip_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "calls.sqlite"
    cache = CallCache(path)
    assert cache.get("missing") is None
    cache.put("k", {"text": "hello", "n": [1, 2]})
    cache.put("k", {"text": "replaced"})
    assert CallCache(path).get("k") == {"text": "replaced"}
    assert "k" in cache and "missing" not in cache
    assert len(cache) == 1


def _write_keys(path: str, prefix: str, count: int) -> None:
    """Child-process worker: write `count` keys into the shared cache."""
    cache = CallCache(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a reader must never see half an entry
        for i in range(count):
            cache.put(f"{prefix}-{i}", {"i": i, "who": prefix})
            cache.put(f"shared-{i % 10}", {"i": i % 10})  # every process writes these ten
            assert cache.get(f"shared-{(i + 5) % 10}") in (None, {"i": (i + 5) % 10})


def test_cache_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    names = ("a", "b", "c", "d")  # several processes write into a new cache at once, some to the same keys
    workers = [ctx.Process(target=_write_keys, args=(path, name, 100)) for name in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    cache = CallCache(path)
    assert len(cache) == 410
    for name in names:
        for i in range(100):
            assert cache.get(f"{name}-{i}") == {"i": i, "who": name}


def test_cache_ignores_and_replaces_a_corrupt_entry(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    cache.put("k", {"text": "hello"})
    entry = next(cache.folder.glob("??/*.json"))
    entry.write_text('{"key": "k", "val')  # cut short by a disk fault
    with pytest.warns(UserWarning, match=str(entry.name)):
        assert cache.get("k") is None
    cache.put("k", {"text": "again"})
    assert cache.get("k") == {"text": "again"}
    assert not list(cache.folder.glob("??/*.tmp")) and not list(cache.folder.glob("??/.*.tmp"))


def test_cache_reads_an_old_sqlite_cache_once(tmp_path: Path) -> None:
    import sqlite3

    old = tmp_path / "judge_calls.sqlite"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO calls VALUES (?, ?)", ("paid", json.dumps({"text": "answer"})))
    cache = CallCache(old)
    assert cache.folder == tmp_path / "judge_calls.cache"
    assert cache.get("paid") == {"text": "answer"} and len(cache) == 1
    assert old.exists()  # kept: nothing is deleted


def test_missing_api_key_raises_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("INTERPFLOW_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="INTERPFLOW_TEST_KEY"):
        ChatClient(model="gpt-4o-mini", api_key_env="INTERPFLOW_TEST_KEY")
    monkeypatch.setenv("INTERPFLOW_TEST_KEY", "   ")
    with pytest.raises(ConfigError, match="INTERPFLOW_TEST_KEY"):
        OpenAIJudge({"name": "openai", "api_key_env": "INTERPFLOW_TEST_KEY"}, tmp_path)


def test_cost_is_nan_without_price_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPFLOW_TEST_KEY", "local")
    client = ChatClient(model="m", base_url="http://127.0.0.1:9/v1", api_key_env="INTERPFLOW_TEST_KEY")
    assert math.isnan(client.usage()["cost_usd"])
    assert client.complete_many([], temperature=0.0, max_tokens=8) == []


def test_build_judge_rejects_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline, openai"):
        build_judge({"name": "nope"}, tmp_path)


@pytest.fixture
def chat_server() -> Iterator[StubChatServer]:
    with StubChatServer(reply=lambda _messages: "Looks fine.\nRating: [[2]]") as server:
        yield server


def test_openai_judge_against_local_server(
    chat_server: StubChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERPFLOW_LOCAL_KEY", "local")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    cfg = {
        "name": "openai",
        "model": "judge-model",
        "base_url": chat_server.base_url,
        "api_key_env": "INTERPFLOW_LOCAL_KEY",
        "concurrency": 4,
        "price_per_1m": {"prompt": 0.15, "completion": 0.60},
    }
    items = [
        JudgeItem("the ocean", "Write about your day.", "I walked by the sea.", 12.0),
        JudgeItem("music", "Name a fruit.", "An apple, hummed like a song.", 20.0),
        JudgeItem("music", "Name a fruit.", "   ", float("nan")),
    ]
    judge = build_judge(cfg, tmp_path)
    assert judge.judge_id == "openai:judge-model"
    assert judge.score([]) == []

    scores = judge.score(items)
    assert [s.concept_score for s in scores] == [2.0, 2.0, 0.0]
    assert [s.fluency_score for s in scores] == [2.0, 2.0, 0.0]
    assert scores[0].instruction_raw.endswith("Rating: [[2]]")
    assert chat_server.requests == 6  # 3 rubrics x 2 non-empty generations
    usage = judge.usage()
    assert usage["requests"] == 6 and usage["cached"] == 0
    assert usage["prompt_tokens"] == 60 and usage["completion_tokens"] == 30
    assert math.isclose(usage["cost_usd"], (60 * 0.15 + 30 * 0.60) / 1e6)

    # The same call again is answered from the cache: no new HTTP requests.
    assert judge.score(items) == scores
    assert chat_server.requests == 6
    assert judge.usage()["requests"] == 6 and judge.usage()["cached"] == 6

    # So is a fresh judge on the same cache folder (the cache is on disk).
    again = build_judge(cfg, tmp_path)
    assert again.score(items) == scores
    assert chat_server.requests == 6
    assert again.usage()["requests"] == 0 and again.usage()["cached"] == 6


def test_openai_judge_asks_axbench_rubrics_as_one_user_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rubric is one user message (no system prompt, as AxBench sends it) naming what it grades and its
    0/1/2 scale: the concept rubric's 2 asks for natural integration, fluency ignores relevance and coherence."""
    monkeypatch.setenv("INTERPFLOW_LOCAL_KEY", "local")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    seen: list = []

    def reply(messages):
        seen.append(messages)
        return "Fine.\nRating: [[1]]"

    with StubChatServer(reply=reply) as server:
        judge = build_judge({"name": "openai", "model": "m", "base_url": server.base_url,
                             "api_key_env": "INTERPFLOW_LOCAL_KEY"}, tmp_path)
        judge.score([JudgeItem("the ocean", "Name a fruit.", "Apples float in the sea.", 10.0)])
    assert len(seen) == 3 and all(len(m) == 1 and m[0]["role"] == "user" for m in seen)
    concept, instruction, fluency = sorted((m[0]["content"] for m in seen), key=lambda text: (
        "concept named" not in text, "instruction" not in text))
    assert "the ocean" in concept and "natural part of the text" in concept and "ignore grammar" in concept
    assert "Name a fruit." in instruction and "topic" in instruction and "the ocean" not in instruction
    assert "fluency alone" in fluency and "relevant, coherent" in fluency and "Name a fruit." not in fluency
    assert all("Apples float in the sea." in text and "Rating: [[n]]" in text for text in (concept, instruction, fluency))


def _judge(server: StubChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings):
    monkeypatch.setenv("INTERPFLOW_LOCAL_KEY", "local")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return build_judge({"name": "openai", "model": "m", "base_url": server.base_url,
                        "api_key_env": "INTERPFLOW_LOCAL_KEY", **settings}, tmp_path)


ITEM = JudgeItem("the ocean", "Name a fruit.", "Apples float in the sea.", 10.0)
LONG_REASON = " ".join(["word"] * 30)  # 30 tokens for the stub, which counts a token per word


def test_a_reply_cut_by_length_is_asked_again_with_twice_the_limit(tmp_path, monkeypatch):
    with StubChatServer(reply=lambda _m: f"{LONG_REASON}\nRating: [[2]]") as server:
        [scores] = _judge(server, tmp_path, monkeypatch, max_tokens=20).score([ITEM])
        assert sorted(server.limits) == [20, 20, 20, 40, 40, 40]  # cut at 20 words, whole at 40
        assert (scores.concept_score, scores.instruction_score, scores.fluency_score, scores.unparsed) == (2, 2, 2, 0)
        assert scores.fluency_raw.endswith("Rating: [[2]]")
        again = _judge(server, tmp_path, monkeypatch, max_tokens=20)
        assert again.score([ITEM]) == [scores] and server.answered == 6  # cut replies and retries come from the cache
        assert again.usage()["cached"] == 6 and again.usage()["length_retries"] == 3


def test_no_token_limit_is_sent_by_default(tmp_path, monkeypatch):
    with StubChatServer(reply=lambda _m: f"{LONG_REASON}\nRating: [[1]]") as server:
        [scores] = _judge(server, tmp_path, monkeypatch).score([ITEM])
    assert server.limits == [None, None, None] and scores.concept_score == 1.0


def test_a_reply_the_server_keeps_cutting_is_asked_length_retries_times_then_counted_unparsed(tmp_path, monkeypatch):
    with StubChatServer(reply=lambda _m: f"{LONG_REASON}\nRating: [[2]]", max_reply_tokens=10) as server:
        judge = _judge(server, tmp_path, monkeypatch, length_retries=2)
        [scores] = judge.score([ITEM])
    assert server.answered == 3 * 3  # each rubric: the first ask and two retries (new sample index, no limit)
    assert (scores.concept_score, scores.instruction_score, scores.fluency_score, scores.unparsed) == (0, 0, 0, 3)
    usage = judge.usage()
    assert (usage["unparsed"], usage["length_retries"], usage["cut_replies"]) == (3, 6, 3)


def test_a_plain_rating_line_is_read_never_scored_0(tmp_path, monkeypatch):
    replies = iter(["The concept is there.\nRating: 2", "Somewhat on topic.\nRating: 1.", "Reads well. Rating: **2**"])
    with StubChatServer(reply=lambda _m: next(replies)) as server:
        judge = _judge(server, tmp_path, monkeypatch, concurrency=1)
        [scores] = judge.score([ITEM])
    assert sorted([scores.concept_score, scores.instruction_score, scores.fluency_score]) == [1.0, 2.0, 2.0]
    assert scores.unparsed == 0 and judge.usage()["unparsed"] == 0


@pytest.mark.parametrize(("settings", "message"), [
    ({"max_tokens": 0}, "judge.max_tokens must be a positive integer or null"),
    ({"length_retries": -1}, "judge.length_retries must be an integer >= 0"),
    ({"max_unparsed_share": 1.5}, "judge.max_unparsed_share must be a number from 0 to 1"),
])
def test_bad_judge_settings_are_refused(settings, message, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERPFLOW_LOCAL_KEY", "local")
    with pytest.raises(ConfigError, match=message):
        build_judge({"name": "openai", "api_key_env": "INTERPFLOW_LOCAL_KEY", **settings}, tmp_path)
