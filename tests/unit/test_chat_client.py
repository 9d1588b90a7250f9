"""The chat client against a real local HTTP endpoint (StubChatServer): retries, timeouts, a stopped
server, a wrong key, unreadable ratings, and re-runs served from the cache."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from interpflow.errors import ConfigError, EndpointError
from interpflow.judges import build_judge
from interpflow.judges.base import JudgeItem
from interpflow.providers.cache import CallCache
from interpflow.providers.openai_chat import ChatClient, backoff_delay
from interpflow.providers.stub_server import StubChatServer

KEY_ENV = "INTERPFLOW_TEST_KEY"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "secret")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def client_for(server: StubChatServer, tmp_path: Path, **kwargs) -> ChatClient:
    options = {"concurrency": 4, "max_retries": 3, "backoff_s": 0.01, "timeout_s": 5.0, **kwargs}
    return ChatClient("stub", base_url=server.base_url, api_key_env=KEY_ENV,
                      cache=CallCache(tmp_path / "calls.sqlite"), **options)


def ask(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    delays = [backoff_delay(attempt, 1.0, 30.0) for attempt in range(6)]
    assert all(2**a / 2 <= d <= 2**a for a, d in enumerate(delays[:5]))  # half fixed, half random
    assert delays[5] <= 30.0
    assert len({backoff_delay(3, 1.0, 30.0) for _ in range(20)}) > 1  # jitter: not one fixed value
    assert backoff_delay(0, 1.0, 30.0, retry_after_s=7.0) == 7.0
    assert backoff_delay(0, 1.0, 30.0, retry_after_s=600.0) == 30.0


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    with StubChatServer(reply=lambda m: "ok " + m[-1]["content"], fail_with=[429, 503, 500]) as server:
        client = client_for(server, tmp_path, concurrency=1)
        answers = client.complete_many(ask(2), temperature=0.0, max_tokens=8)
    assert [a.text for a in answers] == ["ok question 0", "ok question 1"]
    assert server.requests == 5 and server.answered == 2
    assert client.usage()["retries"] == 3 and client.usage()["requests"] == 2


def test_persistent_failure_names_the_endpoint(tmp_path: Path) -> None:
    with StubChatServer(fail_with=[503] * 10) as server:
        client = client_for(server, tmp_path, concurrency=1, max_retries=2)
        with pytest.raises(EndpointError, match=rf"{server.base_url} failed 3 times in a row, last with HTTP 503"):
            client.complete_many(ask(1), temperature=0.0, max_tokens=8)
    assert server.requests == 3


def test_wrong_key_is_one_clear_error(tmp_path: Path) -> None:
    with StubChatServer(api_key="the-right-key") as server:
        client = client_for(server, tmp_path, concurrency=1)
        with pytest.raises(ConfigError, match=f"rejected the API key in {KEY_ENV}"):
            client.complete_many(ask(3), temperature=0.0, max_tokens=8)
    assert server.requests == 1  # no retries of a 401, no further requests after it


def test_slow_server_times_out(tmp_path: Path) -> None:
    with StubChatServer(delay_s=3.0) as server:
        client = client_for(server, tmp_path, concurrency=1, timeout_s=0.3, max_retries=1)
        start = time.perf_counter()
        with pytest.raises(EndpointError, match=r"no answer within timeout_s=0.3"):
            client.complete_many(ask(1), temperature=0.0, max_tokens=8)
        elapsed = time.perf_counter() - start
    assert elapsed < 2.0, elapsed  # two attempts of 0.3 s, not one of 3 s
    assert server.requests == 2


def test_server_stopped_mid_run_then_rerun_resumes_from_cache(tmp_path: Path) -> None:
    questions = ask(12)
    server = StubChatServer(reply=lambda m: "answer to " + m[-1]["content"]).start()
    client = client_for(server, tmp_path, concurrency=1, max_retries=2)
    client.complete_many(questions[:5], temperature=0.0, max_tokens=8)  # these five are cached
    server.stop()
    with pytest.raises(EndpointError, match=rf"{server.base_url} failed 3 times"):
        client.complete_many(questions, temperature=0.0, max_tokens=8)

    with StubChatServer(reply=lambda m: "answer to " + m[-1]["content"], port=server.port) as restarted:
        again = client_for(restarted, tmp_path, concurrency=4)
        answers = again.complete_many(questions, temperature=0.0, max_tokens=8)
        assert restarted.answered == 7  # only the calls that never got an answer
        assert [a.text for a in answers] == [f"answer to question {i}" for i in range(12)]
        assert again.complete_many(questions, temperature=0.0, max_tokens=8) == [
            dataclasses.replace(a, cached=True) for a in answers]
        assert restarted.answered == 7  # a re-run makes no calls


def test_unreadable_ratings_score_zero_and_are_kept(tmp_path: Path) -> None:
    replies = {"concept named": "Rating: [[7]]", "related to the instruction": "I would say two.",
               "how fluent": "Rating: [[1.5]]"}

    def reply(messages: list[dict]) -> str:
        prompt = messages[-1]["content"]
        return next(text for word, text in replies.items() if word in prompt.split("\n")[0])

    with StubChatServer(reply=reply) as server:
        cfg = {"name": "openai", "model": "stub", "base_url": server.base_url, "api_key_env": KEY_ENV}
        judge = build_judge(cfg, tmp_path)
        [scores] = judge.score([JudgeItem("rivers", "Describe a walk.", "We walked along the river.", 10.0)])
    assert (scores.concept_score, scores.instruction_score, scores.fluency_score) == (0.0, 0.0, 1.5)
    assert scores.concept_raw == "Rating: [[7]]" and scores.instruction_raw == "I would say two."
    assert judge.usage()["unparsed"] == 2
