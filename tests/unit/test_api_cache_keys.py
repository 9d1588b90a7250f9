"""What the API answer caches key on, against real local HTTP servers (StubChatServer): the server,
however its URL is spelled, and never an empty reply."""

from __future__ import annotations

from pathlib import Path

import pytest

from interpflow.judges import build_judge
from interpflow.judges.base import JudgeItem
from interpflow.providers.cache import CallCache
from interpflow.providers.openai_chat import ChatClient
from interpflow.providers.stub_server import StubChatServer

KEY_ENV = "INTERPFLOW_TEST_KEY"
ITEM = JudgeItem("rivers", "Describe a walk.", "We walked along the river.", 10.0)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "secret")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def judge_cfg(base_url: str | None) -> dict:
    return {"name": "openai", "model": "same-name", "base_url": base_url, "api_key_env": KEY_ENV, "backoff_s": 0.01}


def scores(base_url: str | None, cache_dir: Path) -> tuple[float, float, float]:
    [result] = build_judge(judge_cfg(base_url), cache_dir).score([ITEM])
    return result.concept_score, result.instruction_score, result.fluency_score


def test_another_server_under_the_same_model_name_is_asked_again(tmp_path: Path) -> None:
    """Two servers answering as `same-name` (as a local server restarted on other weights would): the
    second is asked, not served the first one's answers."""
    with StubChatServer(reply=lambda m: "Rating: [[0]]") as first, StubChatServer(reply=lambda m: "Rating: [[2]]") as second:
        assert scores(first.base_url, tmp_path) == (0.0, 0.0, 0.0)
        assert scores(second.base_url, tmp_path) == (2.0, 2.0, 2.0)
        assert (first.answered, second.answered) == (3, 3)


def test_one_server_however_spelled_shares_its_answers(tmp_path: Path) -> None:
    with StubChatServer() as server:
        assert scores(server.base_url, tmp_path) == (2.0, 2.0, 2.0)
        respelled = f"HTTP://127.0.0.1:{server.port}/v1/"
        assert scores(respelled, tmp_path) == (2.0, 2.0, 2.0)
        assert server.answered == 3


def test_the_server_named_by_openai_base_url_is_part_of_the_key(tmp_path: Path, monkeypatch) -> None:
    """base_url null sends requests to OPENAI_BASE_URL when it is set: the key follows the server."""
    with StubChatServer(reply=lambda m: "Rating: [[0]]") as first, StubChatServer(reply=lambda m: "Rating: [[1]]") as second:
        monkeypatch.setenv("OPENAI_BASE_URL", first.base_url)
        assert scores(None, tmp_path) == (0.0, 0.0, 0.0)
        monkeypatch.setenv("OPENAI_BASE_URL", second.base_url)
        assert scores(None, tmp_path) == (1.0, 1.0, 1.0)
        assert (first.answered, second.answered) == (3, 3)


def test_an_empty_reply_is_retried_and_the_real_one_cached(tmp_path: Path) -> None:
    replies = iter(["", "   \n"])

    def reply(_messages: list[dict]) -> str:
        return next(replies, "fine")

    with StubChatServer(reply=reply) as server:
        cache = CallCache(tmp_path / "calls")
        client = ChatClient("stub", base_url=server.base_url, api_key_env=KEY_ENV, backoff_s=0.01, max_retries=3, cache=cache)
        [answer] = client.complete_many([[{"role": "user", "content": "hi"}]], temperature=0.0, max_tokens=8)
    assert answer.text == "fine" and server.answered == 3
    assert client.usage()["retries"] == 2 and client.usage()["empty_replies"] == 0
    assert client.usage()["requests"] == 3 and client.usage()["completion_tokens"] == 3 * 5  # empty ones are paid too
    assert len(cache) == 1


def test_a_reply_empty_after_every_retry_is_never_cached(tmp_path: Path) -> None:
    with StubChatServer(reply=lambda m: " ") as server:
        cache = CallCache(tmp_path / "calls")
        client = ChatClient("stub", base_url=server.base_url, api_key_env=KEY_ENV, backoff_s=0.01, max_retries=2, cache=cache)
        [answer] = client.complete_many([[{"role": "user", "content": "hi"}]], temperature=0.0, max_tokens=8)
        assert answer.text.strip() == "" and server.answered == 3
        assert client.usage()["empty_replies"] == 1 and client.usage()["requests"] == 3
        assert len(cache) == 0
        again = ChatClient("stub", base_url=server.base_url, api_key_env=KEY_ENV, backoff_s=0.01, max_retries=0, cache=cache)
        again.complete_many([[{"role": "user", "content": "hi"}]], temperature=0.0, max_tokens=8)
        assert server.answered == 4  # asked again: nothing was stored


def test_a_judge_reply_empty_for_good_scores_zero_and_is_asked_again_next_time(tmp_path: Path) -> None:
    with StubChatServer(reply=lambda m: "") as server:
        cfg = {**judge_cfg(server.base_url), "max_retries": 1}
        judge = build_judge(cfg, tmp_path)
        [result] = judge.score([ITEM])
        assert (result.concept_score, result.concept_raw) == (0.0, "")
        assert judge.usage()["empty_replies"] == 3 and judge.usage()["unparsed"] == 3
        build_judge(cfg, tmp_path).score([ITEM])
        assert server.answered == 12  # 3 rubrics x 2 tries, twice
