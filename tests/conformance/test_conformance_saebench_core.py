"""Our `core` metrics reproduce sae-bench 0.6.0's own on the same inputs.

fixtures/saebench_core/topk.json holds fixed inputs (token rows with BOS/EOS/PAD among them, the
residual stream at the SAE's hook, a linear readout to logits, a TopK SAE's weights) and the metrics
sae-bench's `run_evals` and `calculate_misc_metrics` computed from them
(regenerate/saebench_core.py; docs/benchmarks/sae.md, "Conformance with SAEBench"). Here the same inputs go through
saebench/core.py's functions, batch by batch as SAEBench reads them, and every metric SAEBench wrote,
scalar and per latent, must agree to 1e-5 relative."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from interpflow.saebench.core import (metric_groups, reconstruction_scores, sparsity_and_variance, spliced, tally_batch,
                                      weight_metrics)

FIXTURE = Path(__file__).parent / "fixtures" / "saebench_core" / "topk.json"
RELATIVE = 1e-5


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def inputs_of(fixture: dict) -> dict[str, torch.Tensor]:
    values = {k: torch.tensor(v) for k, v in fixture["inputs"].items()}
    return {k: v if k == "tokens" else v.float() for k, v in values.items()}


def logits_of(inputs: dict[str, torch.Tensor], residual: torch.Tensor) -> torch.Tensor:
    """The fixture's stand-in model: (r_t + mean of r_1..r_t) / 2 read out by W_U, b_U."""
    mixed = (residual + residual.cumsum(1) / torch.arange(1, residual.shape[1] + 1)[:, None]) / 2
    return mixed @ inputs["W_U"] + inputs["b_U"]


def our_core(fixture: dict, settings: dict) -> tuple[dict, dict]:
    inputs = inputs_of(fixture)
    sae = {k: inputs[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    sae |= {"threshold": torch.zeros(fixture["shape"]["d_sae"]), "k": torch.tensor([fixture["shape"]["k"]])}
    special = torch.tensor(sorted(fixture["special_tokens"].values()))
    tokens, residual, per_batch = inputs["tokens"], inputs["residual"], settings["batch_size_prompts"]

    sums: dict = {}
    for start in range(0, settings["n_eval_reconstruction_batches"] * per_batch, per_batch):
        ids, hidden = tokens[start : start + per_batch], residual[start : start + per_batch]
        attention = torch.ones_like(ids, dtype=torch.bool)
        splice_at = ~torch.isin(ids, special) if settings["exclude_special_tokens_from_reconstruction"] else attention
        logits = {"clean": logits_of(inputs, hidden), "sae": logits_of(inputs, spliced(sae, hidden, splice_at)),
                  "ablation": logits_of(inputs, torch.zeros_like(hidden))}
        tally_batch(sums, ids, attention, special, logits)

    rows = settings["n_eval_sparsity_variance_batches"] * per_batch
    x = residual[:rows].reshape(-1, residual.shape[-1])
    owners = np.repeat(np.arange(rows), tokens.shape[1])
    scored = ~torch.isin(tokens[:rows].flatten(), special)
    sparsity, features = sparsity_and_variance(sae, x, owners, per_batch, scored=scored)
    weights = weight_metrics(sae)
    return metric_groups(reconstruction_scores(sums), sparsity, features["feature_density"], weights), {**features, **weights}


CASES = ["topk_exclude_special", "topk_splice_everywhere"]


@pytest.mark.parametrize("case", CASES)
def test_every_scalar_saebench_writes_is_reproduced(fixture, case):
    expected = fixture["cases"][case]
    ours, _ = our_core(fixture, expected["settings"])
    for group, values in expected["metrics"].items():
        for key, value in values.items():
            assert key in ours[group], f"{group}.{key} is missing"
            assert math.isclose(ours[group][key], value, rel_tol=RELATIVE, abs_tol=1e-9), (group, key, ours[group][key], value)


@pytest.mark.parametrize("case", CASES)
def test_every_per_latent_metric_saebench_writes_is_reproduced(fixture, case):
    expected = fixture["cases"][case]
    _, ours = our_core(fixture, expected["settings"])
    for key, values in expected["feature_metrics"].items():
        np.testing.assert_allclose(ours[key].double().numpy(), np.array(values, dtype=float), rtol=RELATIVE, atol=1e-9,
                                   equal_nan=True, err_msg=key)


def test_the_fixture_is_sae_benchs_own_and_small(fixture):
    assert fixture["versions"]["sae-bench"] == "0.6.0"
    assert FIXTURE.stat().st_size < 200_000
    # the cases differ where SAEBench's switch says they should: splicing at special tokens changes KL
    cases = fixture["cases"]
    assert (cases["topk_exclude_special"]["metrics"]["model_behavior_preservation"]["kl_div_with_sae"]
            != cases["topk_splice_everywhere"]["metrics"]["model_behavior_preservation"]["kl_div_with_sae"])
