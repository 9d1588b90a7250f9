"""The LLM client's own concurrency: judge the same items at concurrency 1 and at concurrency C.

The endpoint is a local OpenAI-compatible server (StubChatServer) that answers every request after
a fixed delay, standing in for network and queueing latency, so the wall time measures the client,
not a model. Each run starts from an empty cache. Prints both wall times and their ratio
(target: concurrency 8 takes <= 1/5 of the time of concurrency 1), then a re-run's request count.

  python benchmarks/llm_concurrency.py [--items 32] [--delay 0.2] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from interpflow.judges import build_judge
from interpflow.judges.base import JudgeItem
from interpflow.providers.stub_server import StubChatServer


def judge_items(n: int) -> list[JudgeItem]:
    return [JudgeItem(f"concept {i % 5}", f"Describe thing number {i}.", f"A short text about thing {i}.", 10.0)
            for i in range(n)]


def timed_judging(server: StubChatServer, items: list[JudgeItem], concurrency: int, cache_dir: Path) -> tuple[float, dict]:
    cfg = {"name": "openai", "model": "stub", "base_url": server.base_url, "api_key_env": "INTERPFLOW_BENCH_KEY",
           "concurrency": concurrency, "price_per_1m": {"prompt": 0.15, "completion": 0.60}}
    judge = build_judge(cfg, cache_dir)
    start = time.perf_counter()
    judge.score(items)
    return time.perf_counter() - start, judge.usage()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32, help="generations to judge (3 requests each)")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the endpoint waits before each answer")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("INTERPFLOW_BENCH_KEY", "local")
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    items = judge_items(args.items)

    with StubChatServer(delay_s=args.delay) as server, tempfile.TemporaryDirectory() as tmp:
        serial, _ = timed_judging(server, items, 1, Path(tmp) / "serial")
        parallel, usage = timed_judging(server, items, args.concurrency, Path(tmp) / "parallel")
        before = server.requests
        _, rerun = timed_judging(server, items, args.concurrency, Path(tmp) / "parallel")
        rerun_requests = server.requests - before

    n_requests = usage["requests"]
    print(f"{args.items} items x 3 rubrics = {n_requests} requests, endpoint delay {args.delay} s each")
    print(f"concurrency 1:  {serial:7.2f} s  ({n_requests / serial:6.1f} requests/s)")
    print(f"concurrency {args.concurrency}:  {parallel:7.2f} s  ({n_requests / parallel:6.1f} requests/s)")
    print(f"ratio parallel / serial: {parallel / serial:.3f}  (target <= 0.2)")
    print(f"re-run from the cache: {rerun_requests} requests at the server, {rerun['cached']} answers from the cache")


if __name__ == "__main__":
    main()
