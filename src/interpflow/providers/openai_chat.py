"""A small, cached, concurrent wrapper around the official `openai` chat client.

Works with the OpenAI API and with any server that speaks the same
`/v1/chat/completions` protocol (vLLM, llama.cpp, Ollama, ...) via `base_url`.

Transient failures (429, 5xx, 408, timeouts, refused or dropped connections) are retried here
rather than inside `openai`, so the delays follow our config and the final error names the
endpoint: exponential backoff with jitter, a server's Retry-After honoured up to the cap.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from interpflow.errors import ConfigError, EndpointError
from interpflow.progress import Progress
from interpflow.providers.cache import CallCache, key_for

Messages = list[dict[str, str]]

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)  # timeouts included


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after_s: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): the server's Retry-After when it gave
    one, else base * 2**attempt with "equal jitter" (half fixed, half random), never above cap."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), cap_s)
    ceiling = min(cap_s, base_s * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after(exc: Exception) -> float | None:
    """The Retry-After header of an HTTP error, in seconds, when present and numeric."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def describe(exc: Exception, timeout_s: float) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return f"no answer within timeout_s={timeout_s}"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return f"{type(exc).__name__}: {exc}"


def normalise_url(url: str) -> str:
    """One spelling per server, for cache keys: scheme and host in lower case, no default port, no
    trailing slash, no user or password (`HTTP://LocalHost:80/v1/` -> `http://localhost/v1`)."""
    parts = urlsplit(str(url).strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = host if parts.port in (None, {"http": 80, "https": 443}.get(scheme)) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def is_retryable(exc: Exception) -> bool:
    return isinstance(exc, RETRYABLE) or (isinstance(exc, openai.APIStatusError) and exc.status_code == 408)


@dataclass
class Completion:
    """One chat completion: its text, token counts, whether it came from the cache, and why the server
    stopped ("stop", "length" when the reply hit the token limit; None when unknown, e.g. an answer
    cached before this was recorded)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    finish_reason: str | None = None


def require_api_key(api_key_env: str, section: str) -> None:
    """Raise ConfigError naming the variable when it is unset or empty (call before any work)."""
    if not os.environ.get(api_key_env, "").strip():
        raise ConfigError(
            f"the API key variable {api_key_env} is not set; set {api_key_env} or {section}.api_key_env; "
            "for a local server without auth set it to any value, e.g. 'local'"
        )


class ChatClient:
    """Send many chat requests concurrently, caching every answer as soon as it arrives.

    `price_per_1m` is an optional {"prompt": usd, "completion": usd} table of
    prices per million tokens; without it the reported cost is NaN.
    Token counts and cost in `usage()` cover only requests actually sent (each answer the server
    gave, empty ones asked again included); answers served from the cache are counted under "cached".
    A request is tried 1 + `max_retries` times, each attempt limited to `timeout_s`; an empty or
    blank reply counts as a failed attempt, and one still empty after them all is returned as ""
    (counted under "empty_replies") but never cached, so a re-run asks again.

    Cache keys hold the server's URL as the client really calls it (`base_url`, else the
    OPENAI_BASE_URL variable, else the OpenAI API), normalised: two servers never share answers.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 60,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        backoff_cap_s: float = 30.0,
        cache: CallCache | None = None,
        price_per_1m: dict[str, float] | None = None,
        config_section: str = "judge",
    ) -> None:
        self.section = config_section  # named in error messages: the config block to fix
        if not model:
            raise ConfigError(f"the chat model name is empty; set {config_section}.model, e.g. 'gpt-4o-mini'")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1 (got {concurrency}); fix {config_section}.concurrency")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or backoff_cap_s < 0:
            raise ConfigError(
                f"timeout_s must be > 0 and max_retries, backoff_s, backoff_cap_s >= 0 (got {timeout_s}, "
                f"{max_retries}, {backoff_s}, {backoff_cap_s}); fix {config_section}"
            )
        if price_per_1m is not None and not {"prompt", "completion"} <= set(price_per_1m):
            raise ConfigError(
                "price_per_1m needs both 'prompt' and 'completion' (USD per million tokens); "
                f"fix {config_section}.price_per_1m or set it to null"
            )
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.cache = cache
        self.price_per_1m = price_per_1m
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.backoff_cap_s = backoff_s, backoff_cap_s
        self.check_ready()
        self._client = openai.OpenAI(base_url=base_url, api_key=os.environ[api_key_env], timeout=timeout_s, max_retries=0)
        self.endpoint = normalise_url(self._client.base_url)  # base_url, else OPENAI_BASE_URL, else the OpenAI API
        self._lock = threading.Lock()
        self._totals = {"requests": 0, "cached": 0, "retries": 0, "empty_replies": 0, "prompt_tokens": 0,
                        "completion_tokens": 0}

    def check_ready(self) -> None:
        """Raise ConfigError when the API key environment variable is unset or empty."""
        require_api_key(self.api_key_env, self.section)

    def _key(self, messages: Messages, temperature: float, max_tokens: int | None, sample_index: int) -> str:
        return key_for(
            provider="openai_chat",
            base_url=self.endpoint,
            model=self.model,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            sample_index=sample_index,
        )

    def _request(self, messages: Messages, temperature: float, max_tokens: int | None) -> Completion:
        """Send one request, retrying transient failures and empty replies with backoff; raise a clear
        error otherwise. A reply still empty after every retry is returned as it is (text "").
        `max_tokens` None sends no limit (the server's own applies)."""
        limit = {} if max_tokens is None else {"max_tokens": max_tokens}
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=temperature,
                    **limit,
                )
            except openai.AuthenticationError as exc:
                raise ConfigError(
                    f"{self.endpoint} rejected the API key in {self.api_key_env} ({exc.status_code}); "
                    f"check the key or {self.section}.api_key_env"
                ) from exc
            except openai.NotFoundError as exc:
                raise ConfigError(
                    f"model {self.model!r} or the chat endpoint was not found at {self.endpoint}: {exc}; "
                    f"check {self.section}.model and {self.section}.base_url"
                ) from exc
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                if attempt == self.max_retries:
                    raise EndpointError(
                        f"{self.endpoint} failed {attempt + 1} times in a row, last with {describe(exc, self.timeout_s)}; "
                        f"check that the server is up (answers already received are cached, so a re-run resumes), "
                        f"or raise {self.section}.timeout_s / {self.section}.max_retries"
                    ) from exc
                self._retry_after(attempt, retry_after(exc))
                continue
            completion = self._completion(response)
            if completion.text.strip():
                return completion
            if attempt == self.max_retries:
                with self._lock:
                    self._totals["empty_replies"] += 1
                return completion
            self._count_answer(completion)
            self._retry_after(attempt, None)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retry_after(self, attempt: int, server_delay_s: float | None) -> None:
        with self._lock:
            self._totals["retries"] += 1
        time.sleep(backoff_delay(attempt, self.backoff_s, self.backoff_cap_s, server_delay_s))

    @staticmethod
    def _completion(response: Any) -> Completion:
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        return Completion(
            text=(choice.message.content if choice else None) or "",
            prompt_tokens=int(usage.prompt_tokens) if usage else 0,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
            cached=False,
            finish_reason=choice.finish_reason if choice else None,
        )

    def _record(self, key: str, completion: Completion) -> None:
        """Store a fresh answer in the cache (an empty one never) and add its tokens to the totals."""
        if self.cache is not None and completion.text.strip():
            self.cache.put(
                key,
                {
                    "text": completion.text,
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "finish_reason": completion.finish_reason,
                },
            )
        self._count_answer(completion)

    def _count_answer(self, completion: Completion) -> None:
        """Every answer the server sent is a request paid for, an empty one asked again included."""
        with self._lock:
            self._totals["requests"] += 1
            self._totals["prompt_tokens"] += completion.prompt_tokens
            self._totals["completion_tokens"] += completion.completion_tokens

    def complete_many(
        self,
        list_of_messages: list[Messages],
        temperature: float,
        max_tokens: int | None,
        sample_index: int = 0,
    ) -> list[Completion]:
        """Answer every message list, in order; cached answers are reused, the rest sent concurrently.

        Identical requests within one call are sent once.  Each answer is cached
        as soon as it arrives, so if a request fails the finished ones are kept.
        """
        keys = [self._key(m, temperature, max_tokens, sample_index) for m in list_of_messages]
        results: dict[str, Completion] = {}
        to_send: dict[str, Messages] = {}
        for key, messages in zip(keys, list_of_messages):
            if key in results or key in to_send:
                continue
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                results[key] = Completion(
                    text=hit["text"],
                    prompt_tokens=int(hit["prompt_tokens"]),
                    completion_tokens=int(hit["completion_tokens"]),
                    cached=True,
                    finish_reason=hit.get("finish_reason"),
                )
            else:
                to_send[key] = messages
        with self._lock:
            self._totals["cached"] += sum(1 for key in keys if key in results)

        if to_send:
            results.update(self._send_all(to_send, temperature, max_tokens))
        return [results[key] for key in keys]

    def _send_all(
        self, to_send: dict[str, Messages], temperature: float, max_tokens: int | None
    ) -> dict[str, Completion]:
        """Send the uncached requests on a thread pool; stop early on the first error."""
        done: dict[str, Completion] = {}
        failed = threading.Event()  # after the first failure, queued requests are not sent
        progress = Progress(f"{self.model} requests", len(to_send), "requests")

        def run(key: str, messages: Messages) -> None:
            if failed.is_set():
                return
            try:
                completion = self._request(messages, temperature, max_tokens)
            except BaseException:
                failed.set()
                raise
            self._record(key, completion)
            done[key] = completion
            with self._lock:
                progress.update()

        executor = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            futures = [executor.submit(run, key, messages) for key, messages in to_send.items()]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                if future.done() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        return done

    def usage(self) -> dict[str, Any]:
        """Totals so far: requests sent, cached answers, tokens and cost (NaN without prices)."""
        with self._lock:
            totals: dict[str, Any] = dict(self._totals)
        if self.price_per_1m is None:
            totals["cost_usd"] = math.nan
        else:
            totals["cost_usd"] = (
                totals["prompt_tokens"] * float(self.price_per_1m["prompt"])
                + totals["completion_tokens"] * float(self.price_per_1m["completion"])
            ) / 1_000_000
        return totals
