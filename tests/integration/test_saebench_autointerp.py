"""SAEBench's autointerp against a local OpenAI-compatible stub server whose "LLM" reads the prompts
the way a perfect interpreter would: it explains a latent by the token marked most often, and picks
the scoring texts that contain that token. Latents planted on one word each then score 1; a scorer
that always answers None scores exactly the share of silent examples; unreadable answers are
counted, not scored. The last test runs the stage on the tiny Llama's real cached activations."""

from __future__ import annotations

import collections
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from interpflow.artifacts import write_parquet, write_tensors
from interpflow.providers.stub_server import StubChatServer
from interpflow.sae.format import pre_activations
from interpflow.saebench.autointerp import DEFAULTS, autointerp, autointerp_latents, chat_client, parse_numbers
from interpflow.stages.activations import cache_activations

WORDS = ["apple", "river", "piano", "seven"]  # latent i fires on WORDS[i]
FILLER = ["the", "a", "of", "and", "to", "in", "is", "it", "on", "that", "was", "for"]


def oracle_reply(messages: list[dict]) -> str:
    prompt = messages[-1]["content"]
    if messages[0]["role"] == "system":  # explanation: the most often marked token
        marked = collections.Counter(m.strip() for m in re.findall(r"<<(.*?)>>", prompt))
        return f"the word {marked.most_common(1)[0][0]}" if marked else "nothing"
    word = re.search(r'described as: "the word (\w+)"', prompt)
    texts = re.findall(r"^(\d+)\. (.*)$", prompt, flags=re.M)
    hits = [n for n, text in texts if word and re.search(rf"\b{word.group(1)}\b", text)]
    return ", ".join(hits) or "None"


def planted(n_examples: int = 200, length: int = 12, seed: int = 0):
    """Token texts and latents: each example holds one planted word at a random place, or none."""
    rng = np.random.default_rng(seed)
    tokens, rows = [], []
    for e in range(n_examples):
        words = [" " + w for w in rng.choice(FILLER, length)]
        acts = np.zeros((length, len(WORDS)), dtype=np.float32)
        if e % 5:  # a fifth of the examples hold no planted word
            latent = int(rng.integers(len(WORDS)))
            place = int(rng.integers(length))
            words[place] = " " + WORDS[latent]
            acts[place, latent] = 1.0 + rng.random()
        tokens.append(words)
        rows.append(acts)
    return tokens, torch.tensor(np.concatenate(rows))


def llm_cfg(server: StubChatServer) -> dict:
    return {"model": "stub", "base_url": server.base_url, "api_key_env": "INTERPFLOW_TEST_KEY", "concurrency": 4,
            "timeout_s": 10, "max_retries": 0, "backoff_s": 0.0, "price_per_1m": None}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("INTERPFLOW_TEST_KEY", "local")


def test_planted_latents_score_one_with_a_perfect_interpreter(tmp_path):
    tokens, latents = planted()
    with StubChatServer(reply=oracle_reply) as server:
        table = autointerp_latents(latents, tokens, chat_client(llm_cfg(server), str(tmp_path)), {**DEFAULTS, "n_latents": 4})
        assert server.answered == 8  # one explanation and one scoring request per latent
        autointerp_latents(latents, tokens, chat_client(llm_cfg(server), str(tmp_path)), {**DEFAULTS, "n_latents": 4})
        assert server.answered == 8  # the re-run is answered from the cache
    assert sorted(table["latent"]) == [0, 1, 2, 3]
    assert [f"the word {WORDS[i]}" for i in table["latent"]] == list(table["explanation"])
    assert table["score"].min() == 1.0, table
    assert (table["n_scoring_examples"] == 14).all() and (table["n_firing_examples"] == 4).all()


def test_a_scorer_that_never_picks_scores_the_silent_share_and_unreadable_answers_are_not_scored(tmp_path):
    tokens, latents = planted()
    with StubChatServer(reply=lambda m: "the word x" if m[0]["role"] == "system" else "None") as server:
        table = autointerp_latents(latents, tokens, chat_client(llm_cfg(server), str(tmp_path / "a")),
                                   {**DEFAULTS, "n_latents": 4})
    assert np.allclose(table["score"], 10 / 14)
    with StubChatServer(reply=lambda m: "I cannot tell.") as server:
        table = autointerp_latents(latents, tokens, chat_client(llm_cfg(server), str(tmp_path / "b")),
                                   {**DEFAULTS, "n_latents": 4})
    assert table["score"].isna().all()
    assert parse_numbers("3, 5 and 7", 14) == {3, 5, 7} and parse_numbers("None.", 14) == set()
    assert parse_numbers("15", 14) is None and parse_numbers("maybe", 14) is None


def test_the_stage_on_the_tiny_llamas_cached_activations(tiny_model_dir, tiny_model_cfg, tmp_path):
    frame = pd.DataFrame({
        "example_id": range(24), "concept_id": [0] * 24, "label": [1, 0] * 12, "category": ["positive", "negative"] * 12,
        "genre": ["text"] * 24, "input": [f"Tell me about item {i}." for i in range(24)],
        "output": [f"Item {i} is {'red' if i % 2 else 'blue'} and sits near the river bank." for i in range(24)],
    })
    write_parquet(frame, tmp_path / "data.parquet")
    cache_activations(str(tiny_model_dir), tiny_model_cfg, 2, {"batch_size": 8, "max_length": 64, "dtype": "float32"},
                      str(tmp_path / "data.parquet"), str(tmp_path / "acts.safetensors"), str(tmp_path / "acts.index.parquet"))
    torch.manual_seed(0)
    d = 64
    sae = {"W_enc": torch.randn(d, 32) / d**0.5, "b_enc": torch.zeros(32), "W_dec": torch.randn(32, d),
           "b_dec": torch.zeros(d), "threshold": torch.zeros(32)}
    from safetensors import safe_open

    with safe_open(str(tmp_path / "acts.safetensors"), "pt") as f:  # each latent fires on its top 3% of tokens
        sae["threshold"] = torch.quantile(pre_activations(sae, f.get_tensor("acts")), 0.97, dim=0)
    write_tensors(sae, tmp_path / "sae.safetensors", {"source": "train"})
    with StubChatServer(reply=oracle_reply) as server:
        autointerp(str(tiny_model_dir), tiny_model_cfg, str(tmp_path / "sae.safetensors"), "random", [str(tmp_path / "acts.safetensors")],
                   [str(tmp_path / "data.parquet")],
                   {"n_latents": 3, "max_length": 64, "llm": llm_cfg(server)}, str(tmp_path / "cache"), 2, str(tmp_path / "out.json"))
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["eval_type_id"] == "autointerp" and len(result["eval_result_details"]) == 3
    assert 0 <= result["eval_result_metrics"]["autointerp"]["autointerp_score"] <= 1
    assert result["eval_result_unstructured"]["usage"]["requests"] == 6
    for detail in result["eval_result_details"]:  # windows of the tiny model's real texts were shown and scored
        assert detail["explanation"].startswith("the word ") and detail["n_scoring_examples"] > detail["n_firing_examples"] > 0
