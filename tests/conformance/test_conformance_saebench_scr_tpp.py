"""Our SCR and TPP reproduce sae-bench 0.6.0's own functions on the same inputs.

fixtures/saebench_scr_tpp/scr_tpp.json (regenerate/saebench_scr_tpp.py; docs/benchmarks/sae.md, "Conformance with
SAEBench") holds fixed inputs and what SAEBench's code made of them: probes trained by its
`train_probe_gpu` (torch seeded before the call), SCR's and TPP's latent attributions, the latents
chosen for ablation, the ablated pooled activations and a probe's accuracy on them, and the SCR and TPP
scores of fixed accuracies. Here the same inputs go through saebench/probe_training.py, scr.py and tpp.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from interpflow.sae.format import encode
from interpflow.saebench.probe_training import PROBE_DEFAULTS, LinearProbe, fit_probe
from interpflow.saebench.scr import pairs_mean, scr_effects, scr_metrics
from interpflow.saebench.tpp import latent_effects, top_latents, tpp_metrics

FIXTURE = Path(__file__).parent / "fixtures" / "saebench_scr_tpp" / "scr_tpp.json"
SCR_PROBE, PROFESSION, GENDER = "male_professor / female_nurse", "professor / nurse", "male / female"


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def array(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def probe_settings(saebench: dict) -> dict:
    """Our probe config of SAEBench's train_probe_gpu arguments, the epoch chosen on the test set (SAEBench's)."""
    return {**PROBE_DEFAULTS, "probe_epochs": saebench["epochs"], "probe_lr": saebench["lr"],
            "probe_l1_penalty": saebench["l1_penalty"], "probe_train_batch_size": saebench["batch_size"],
            "early_stopping_patience": saebench["early_stopping_patience"], "probe_selection": "best_test"}


@pytest.mark.parametrize("case", ["saebench_defaults", "saebench_defaults_other_seed", "stops_early"])
def test_probes_train_as_saebench_trains_them(fixture, case):
    expected = fixture["probes"][case]
    data = {k: array(v) if k.endswith("_x") else np.asarray(v, dtype=int) for k, v in expected["inputs"].items()}
    probe = fit_probe(data["train_x"], data["train_y"], data["test_x"], data["test_y"], probe_settings(expected["settings"]),
                      expected["train_seed"])
    np.testing.assert_allclose(probe.weight, expected["weight"], rtol=1e-5, atol=1e-6)
    assert probe.bias == pytest.approx(expected["bias"], rel=1e-5, abs=1e-6)
    assert probe.selection_accuracy == pytest.approx(expected["best_test_accuracy"], abs=1e-6)
    assert probe.accuracy(data["eval_x"], data["eval_y"]) == pytest.approx(expected["eval_accuracy"], abs=1e-6)


def sae_of(stored: dict) -> dict[str, torch.Tensor]:
    sae = {k: torch.tensor(v, dtype=torch.float32) for k, v in stored.items()}
    return sae | {"threshold": torch.zeros(sae["b_enc"].shape)}  # a ReLU SAE


def pooled_latents(sae: dict, acts: np.ndarray) -> np.ndarray:
    """Each row's SAE latents averaged over its tokens; masked tokens (all zero, as SAEBench caches them) left out."""
    return np.stack([encode(sae, torch.from_numpy(row[np.abs(row).sum(-1) != 0])).mean(0).numpy() for row in acts])


def test_latent_attributions_are_saebench_s(fixture):
    stored = fixture["effects_and_ablation"]
    sae = sae_of(stored["sae"])
    positives, negatives = array(stored["acts"][GENDER]), array(stored["acts"]["female_data_only"])
    features = np.concatenate([pooled_latents(sae, positives), pooled_latents(sae, negatives)])
    labels = np.r_[np.ones(len(positives), dtype=int), np.zeros(len(negatives), dtype=int)]
    probe = LinearProbe(array(stored["probe"]["weight"]), stored["probe"]["bias"], 1, float("nan"))
    w_dec = sae["W_dec"].numpy()
    np.testing.assert_allclose(scr_effects(features, labels, probe, w_dec), stored["effects"]["scr"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(latent_effects(features, labels, probe, w_dec), stored["effects"]["tpp"], rtol=1e-4, atol=1e-6)


def test_the_latents_chosen_for_ablation_are_saebench_s(fixture):
    for case in fixture["top_n"]:
        assert sorted(top_latents(array(case["effects"]), case["n"]).tolist()) == case["latents"], case["n"]


def test_ablated_activations_and_accuracies_are_saebench_s(fixture):
    stored = fixture["effects_and_ablation"]
    sae = sae_of(stored["sae"])
    acts = array(stored["ablation_acts"])
    llm, latents_pooled = acts.mean(1), pooled_latents(sae, acts)
    probe = LinearProbe(array(stored["probe"]["weight"]), stored["probe"]["bias"], 1, float("nan"))
    w_dec = sae["W_dec"].numpy()
    for n, expected in stored["ablated"].items():
        latents = top_latents(array(stored["effects"]["scr"]), int(n))
        assert sorted(latents.tolist()) == expected["latents"]
        patched = llm - latents_pooled[:, latents] @ w_dec[latents]
        np.testing.assert_allclose(patched, expected["pooled"], rtol=1e-5, atol=1e-5)
        assert probe.accuracy(patched, np.asarray(stored["ablation_labels"])) == pytest.approx(expected["accuracy"], abs=1e-6)


def our_scr(case: dict) -> dict[str, float]:
    """scr_metrics of one SAEBench pair's accuracies, its names turned into ours."""
    clean, ablated = case["llm_clean_accs"], case["class_accuracies"]
    on = {attribute: f"{SCR_PROBE} probe on {data} data" for attribute, data in (("profession", PROFESSION), ("gender", GENDER))}
    return scr_metrics({a: clean[name] for a, name in on.items()}, {"profession": clean[PROFESSION], "gender": clean[GENDER]},
                       {1: {int(n): acc[on["profession"]] for n, acc in ablated[GENDER].items()},
                        2: {int(n): acc[on["gender"]] for n, acc in ablated[PROFESSION].items()}})


def test_scr_scores_and_their_mean_are_saebench_s(fixture):
    pairs = fixture["scr"]["pairs"]
    ours = {name: our_scr(case) for name, case in pairs.items()}
    for name, case in pairs.items():
        assert ours[name] == pytest.approx(case["scores"], abs=1e-12), name  # same keys: a tied pair has no scr_metric
    averaged = fixture["scr"]["averaged"]
    assert {k: pairs_mean(ours.values(), k) for k in averaged} == pytest.approx(averaged, abs=1e-12)
    assert pairs_mean(ours.values(), "scr_metric_threshold_999") is None


def test_tpp_scores_are_saebench_s(fixture):
    stored = fixture["tpp"]
    ablated = {c: {int(n): accs for n, accs in by_n.items()} for c, by_n in stored["class_accuracies"].items()}
    overall, per_class = tpp_metrics(stored["llm_clean_accs"], ablated)
    assert overall == pytest.approx(stored["overall"], abs=1e-12)
    assert per_class.keys() == stored["per_class"].keys()
    for concept, scores in per_class.items():
        assert scores == pytest.approx(stored["per_class"][concept], abs=1e-12), concept
