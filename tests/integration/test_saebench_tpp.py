"""SAEBench's TPP on cached activations where concept c is planted along dimension c: ablating the
latents an SAE ranks for a concept breaks that concept's probe, and others much less, when the SAE has one
latent per concept, does nothing when no latent reads the concepts, and the pooled shortcut equals
ablating token by token."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from interpflow.artifacts import write_tensors
from interpflow.sae.format import decode, encode
from interpflow.saebench.tpp import tpp

from cached_acts import write_cached

D = 16
TOKENS = 3
CONCEPTS = (0, 1, 2)
# A trained probe: SAEBench's takes ~5,000 AdamW steps at lr 1e-3 on its 4,000 texts, and its best-test
# epoch is the first to separate the classes, on these few texts (120) a probe hardly off its random start
FEW_EXAMPLES_PROBE = {"probe_lr": 0.01, "probe_selection": "last_epoch"}


def write_split(folder, name: str, per_concept: int, rng: np.random.Generator) -> tuple[str, str]:
    rows, acts = [], []
    for concept in CONCEPTS:
        for label in (1, 0):
            for _ in range(per_concept):
                tokens = rng.normal(size=(TOKENS, D))
                tokens[:, concept] += 3.0 * label
                rows.append({"example_id": len(rows), "concept_id": concept, "label": label,
                             "category": "positive" if label else "negative", "genre": "text"})
                acts.append(tokens)
    return write_cached(folder, name, rows, acts)


def relu_sae(reads_concepts: bool) -> dict[str, torch.Tensor]:
    w_enc = torch.eye(D)
    if not reads_concepts:
        w_enc[:, list(CONCEPTS)] = 0.0
    return {"W_enc": w_enc, "b_enc": torch.zeros(D), "W_dec": torch.eye(D), "b_dec": torch.full((D,), 0.1),
            "threshold": torch.zeros(D)}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tpp")
    rng = np.random.default_rng(0)
    return folder, write_split(folder, "train", 60, rng), write_split(folder, "test", 40, rng)


def run(folder, train, test, sae: dict, name: str) -> dict:
    write_tensors(sae, folder / f"{name}.safetensors", {"source": "train"})
    out = folder / f"{name}.json"
    tpp(str(folder / f"{name}.safetensors"), name, [train[0]], [train[1]], [test[0]], [test[1]], "toy", 2,
        {"n_values": [1, 2, 5], **FEW_EXAMPLES_PROBE}, str(out))
    return json.loads(out.read_text())


def test_one_latent_per_concept_breaks_only_its_own_probe(splits):
    folder, train, test = splits
    result = run(folder, train, test, relu_sae(True), "disentangled")
    assert result["eval_type_id"] == "tpp" and len(result["eval_result_details"]) == 3
    metrics = result["eval_result_metrics"]["tpp_metrics"]
    for detail in result["eval_result_details"]:
        assert detail["llm_clean_accuracy"] >= 0.95
    # the other probes read concept c too (its positives are their negatives), so they lose a little
    assert metrics["tpp_threshold_1_intended_diff_only"] >= 0.2, metrics
    assert 0 <= metrics["tpp_threshold_1_unintended_diff_only"] <= metrics["tpp_threshold_1_intended_diff_only"] / 2, metrics
    assert metrics["tpp_threshold_1_total_metric"] >= 0.1, metrics


def test_no_latent_reading_the_concepts_changes_nothing(splits):
    folder, train, test = splits
    metrics = run(folder, train, test, relu_sae(False), "blind")["eval_result_metrics"]["tpp_metrics"]
    for n in (1, 2, 5):
        assert abs(metrics[f"tpp_threshold_{n}_intended_diff_only"]) <= 0.05, metrics
        assert abs(metrics[f"tpp_threshold_{n}_total_metric"]) <= 0.05, metrics


def test_pooled_ablation_equals_token_by_token_ablation():
    torch.manual_seed(0)
    sae = {"W_enc": torch.randn(D, 32), "b_enc": torch.randn(32) * 0.1, "W_dec": torch.randn(32, D),
           "b_dec": torch.randn(D), "threshold": torch.zeros(32)}
    tokens = torch.randn(5, D)
    ablated = torch.tensor([3, 7, 11])
    z = encode(sae, tokens)
    error = tokens - decode(sae, z)
    z_ablated = z.clone()
    z_ablated[:, ablated] = 0.0
    token_by_token = (decode(sae, z_ablated) + error).mean(0)
    pooled = tokens.mean(0) - z.mean(0)[ablated] @ sae["W_dec"][ablated]
    torch.testing.assert_close(token_by_token, pooled, rtol=1e-4, atol=1e-4)
