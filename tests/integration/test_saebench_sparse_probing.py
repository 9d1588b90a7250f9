"""SAEBench's sparse probing on cached activations with a planted concept direction per concept: an
SAE with a latent reading that direction gets top-1 accuracy near 1, the same SAE with that latent
removed falls to chance, and the LLM's own probes see the direction either way."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from interpflow.artifacts import write_tensors
from interpflow.saebench.sparse_probing import concept_tasks, pooled_examples, sparse_probing, top_k_by_mean_difference

from cached_acts import write_cached

D = 16
TOKENS = 3
CONCEPTS = (0, 1)  # concept c is planted along dimension c


def write_split(folder, name: str, per_class: int, rng: np.random.Generator, shared_negatives: bool) -> tuple[str, str]:
    rows, acts = [], []
    for concept in CONCEPTS:
        for label in (1, 0):
            for _ in range(per_class):
                tokens = rng.normal(size=(TOKENS, D))
                if label:
                    tokens[:, concept] += 3.0
                owner = -1 if (shared_negatives and not label) else concept
                rows.append({"example_id": len(rows), "concept_id": owner, "label": label,
                             "category": "positive" if label else "negative", "genre": "text"})
                acts.append(tokens)
    return write_cached(folder, name, rows, acts)


def relu_sae(reads_concepts: bool) -> dict[str, torch.Tensor]:
    """One ReLU latent per dimension; without `reads_concepts` the concept dimensions' latents read nothing."""
    w_enc = torch.eye(D)
    if not reads_concepts:
        w_enc[:, list(CONCEPTS)] = 0.0
    return {"W_enc": w_enc, "b_enc": torch.zeros(D), "W_dec": torch.eye(D), "b_dec": torch.zeros(D), "threshold": torch.zeros(D)}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse_probing")
    rng = np.random.default_rng(0)
    return folder, write_split(folder, "train", 80, rng, shared_negatives=True), write_split(folder, "test", 60, rng, shared_negatives=False)


def run(folder, train, test, sae: dict, name: str) -> dict:
    write_tensors(sae, folder / f"{name}.safetensors", {"source": "train", "architecture": "relu"})
    out = folder / f"{name}.json"
    sparse_probing(str(folder / f"{name}.safetensors"), name, [train[0]], [train[1]], [test[0]], [test[1]],
                   "toy", 2, {}, str(out))
    return json.loads(out.read_text())


def test_a_latent_reading_the_concept_is_found_and_its_removal_drops_to_chance(splits):
    folder, train, test = splits
    planted = run(folder, train, test, relu_sae(True), "planted")
    removed = run(folder, train, test, relu_sae(False), "removed")
    assert planted["eval_type_id"] == "sparse_probing"
    assert [d["dataset_name"] for d in planted["eval_result_details"]] == ["concept_0", "concept_1"]
    assert planted["eval_result_metrics"]["sae"]["sae_top_1_test_accuracy"] >= 0.95
    assert removed["eval_result_metrics"]["sae"]["sae_top_1_test_accuracy"] <= 0.7
    assert removed["eval_result_metrics"]["sae"]["sae_test_accuracy"] <= 0.75
    for result in (planted, removed):  # the LLM's probes do not depend on the SAE
        assert result["eval_result_metrics"]["llm"]["llm_test_accuracy"] >= 0.95
        assert result["eval_result_metrics"]["llm"]["llm_top_1_test_accuracy"] >= 0.95
    assert planted["eval_result_metrics"]["llm"] == removed["eval_result_metrics"]["llm"]


def test_pooling_means_each_examples_tokens_and_tasks_balance_the_classes(splits):
    folder, train, test = splits
    features, index = pooled_examples([train[0]], [train[1]])
    from safetensors import safe_open

    with safe_open(train[0], "pt") as f:
        acts = f.get_tensor("acts").numpy()
    np.testing.assert_allclose(features[5], acts[5 * TOKENS : 6 * TOKENS].mean(0), rtol=1e-6)
    sae_features, _ = pooled_examples([train[0]], [train[1]], relu_sae(True), chunk_tokens=7)  # chunks split examples
    np.testing.assert_allclose(sae_features[5], np.maximum(acts[5 * TOKENS : 6 * TOKENS], 0).mean(0), rtol=1e-6)

    _, test_index = pooled_examples([test[0]], [test[1]])
    tasks, skipped = concept_tasks(index, test_index, {"seed": 0, "max_examples_per_class": 50, "min_examples_per_class": 4})
    assert skipped == [] and [t["concept_id"] for t in tasks] == [0, 1]
    rows, labels = tasks[0]["train"]
    assert labels.sum() == 50 and len(labels) == 100 and len(set(rows)) == 100
    assert set(index.loc[rows[labels == 0], "concept_id"]) == {-1}  # the genre's shared negatives
    test_rows, test_labels = tasks[1]["test"]
    assert set(test_index.loc[test_rows, "concept_id"]) == {1} and test_labels.sum() == 50

    features = np.zeros((4, 3))
    features[:2, 2] = 5.0
    features[:2, 0] = -1.0
    assert list(top_k_by_mean_difference(features, np.array([1, 1, 0, 0]), 2)) == [2, 0]
