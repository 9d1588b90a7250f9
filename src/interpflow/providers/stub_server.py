"""A local OpenAI-compatible chat endpoint with scripted answers, for tests and benchmarks.

It is a real HTTP server on 127.0.0.1 (the `openai` client talks to it exactly as to any other
server), whose behaviour is set from Python: what it answers, how long it waits before answering,
which requests fail with which status, and which API key it accepts. It counts what it receives.
A reply longer than the request's `max_tokens` (or the server's own `max_reply_tokens`), counting a
token per word, is cut there and ends with finish_reason "length", as a real server's would.

    with StubChatServer(reply=lambda messages: "Rating: [[2]]", delay_s=0.05) as server:
        client = ChatClient("stub", base_url=server.base_url, ...)

Not a language model: `LlamaServer` in the tests runs a real one (llama.cpp) when it is installed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[list[dict]], str]


def rating_reply(_messages: list[dict]) -> str:
    return "Reads fine.\nRating: [[2]]"


class StubChatServer:
    """POST /v1/chat/completions answered by `reply(messages)` after `delay_s` seconds.

    `fail_with`: HTTP statuses returned, one per request, before normal answers resume (e.g.
    [429, 503]); `api_key`: the only bearer key accepted (None: any); `port`: 0 picks a free one;
    `max_reply_tokens`: the server's own limit on a reply, in words (None: none).
    `requests` counts every POST received, `answered` the 200 answers sent; `limits` holds each
    answered request's max_tokens (None where it sent none)."""

    def __init__(self, reply: Reply = rating_reply, delay_s: float = 0.0, fail_with: list[int] | None = None,
                 api_key: str | None = None, port: int = 0, tokens: tuple[int, int] = (10, 5),
                 max_reply_tokens: int | None = None):
        self.reply, self.delay_s, self.api_key, self.tokens = reply, delay_s, api_key, tokens
        self.max_reply_tokens = max_reply_tokens
        self.fail_with = list(fail_with or [])
        self.requests = self.answered = 0
        self.prompts: list[str] = []
        self.limits: list[int | None] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "StubChatServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "StubChatServer":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _next_failure(self) -> int | None:
        with self._lock:
            self.requests += 1
            return self.fail_with.pop(0) if self.fail_with else None

    def _cut(self, text: str, max_tokens: int | None) -> tuple[str, str]:
        """The reply as sent and its finish_reason: cut after the first limit words when it is longer."""
        limits = [n for n in (max_tokens, self.max_reply_tokens) if n is not None]
        words = text.split(" ")
        if limits and len(words) > min(limits):
            return " ".join(words[: min(limits)]), "length"
        return text, "stop"

    def _answer(self, body: dict) -> dict:
        text, finish_reason = self._cut(self.reply(body["messages"]), body.get("max_tokens"))
        with self._lock:
            self.answered += 1
            self.prompts.append(body["messages"][-1]["content"])
            self.limits.append(body.get("max_tokens"))
        prompt_tokens, completion_tokens = self.tokens
        return {
            "id": f"chatcmpl-stub-{self.answered}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: one request per connection, so stop() ends them all
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                failure = stub._next_failure()
                if self.path.rstrip("/") != "/v1/chat/completions" or "messages" not in body:
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if stub.api_key is not None and self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    return self._send(401, {"error": {"message": "invalid api key", "code": "invalid_api_key"}})
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                if failure is not None:
                    return self._send(failure, {"error": {"message": f"scripted failure {failure}"}})
                self._send(200, stub._answer(body))

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (keep output quiet)
                pass

        return Handler
