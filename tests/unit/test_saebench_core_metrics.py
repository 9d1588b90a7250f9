"""SAEBench's core formulas (saebench/core.py) checked against independent, loop-by-loop numpy
computations on tiny tensors: KL at every ordinary position (the last included), CE at those with a
real next token, and the per-batch metrics (SAEBench's explained variance, legacy explained variance,
relative reconstruction bias, mse) over batches of whole examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpflow.sae.format import decode, encode
from interpflow.saebench.core import reconstruction_scores, sparsity_and_variance, tally_batch

BOS, EOS, PAD = 0, 1, 2


def log_softmax(row: np.ndarray) -> np.ndarray:
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


def reconstruction_by_hand(ids: np.ndarray, attention: np.ndarray, logits: dict[str, np.ndarray]) -> dict:
    ce = {run: [] for run in logits}
    kl = {"sae": [], "ablation": []}
    rows, width = ids.shape
    for r in range(rows):
        for t in range(width):
            if not attention[r, t] or ids[r, t] in (BOS, EOS, PAD):
                continue
            clean = log_softmax(logits["clean"][r, t])
            for run in kl:
                kl[run].append(float((np.exp(clean) * (clean - log_softmax(logits[run][r, t]))).sum()))
            if t + 1 < width and attention[r, t + 1]:
                for run in ce:
                    ce[run].append(-float(log_softmax(logits[run][r, t])[ids[r, t + 1]]))
    return {"kl": {run: np.mean(v) for run, v in kl.items()}, "ce": {run: np.mean(v) for run, v in ce.items()}}


def test_kl_scores_every_ordinary_position_and_ce_every_one_with_a_next_token():
    generator = torch.Generator().manual_seed(0)
    ids = torch.tensor([[BOS, 5, 6, 7, EOS, 8], [BOS, 9, 4, 3, PAD, PAD]])  # row 2 right-padded after 4 tokens
    attention = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    logits = {run: torch.randn(2, 6, 11, generator=generator) for run in ("clean", "sae", "ablation")}
    logits["sae"][0, -1] += 5 * torch.randn(11, generator=generator)  # the last position disagrees most
    sums: dict = {}
    tally_batch(sums, ids, attention, torch.tensor([BOS, EOS, PAD]), logits)
    ours = reconstruction_scores(sums)
    expected = reconstruction_by_hand(ids.numpy(), attention.numpy(), {k: v.double().numpy() for k, v in logits.items()})

    assert ours["kl_div_with_sae"] == pytest.approx(expected["kl"]["sae"], rel=1e-6)
    assert ours["kl_div_with_ablation"] == pytest.approx(expected["kl"]["ablation"], rel=1e-6)
    assert ours["kl_div_score"] == pytest.approx(1 - expected["kl"]["sae"] / expected["kl"]["ablation"], rel=1e-5)
    assert ours["ce_loss_with_sae"] == pytest.approx(expected["ce"]["sae"], rel=1e-6)
    assert ours["ce_loss_without_sae"] == pytest.approx(expected["ce"]["clean"], rel=1e-6)
    assert ours["ce_loss_with_ablation"] == pytest.approx(expected["ce"]["ablation"], rel=1e-6)
    assert ours["tokens"] == 10  # every real token run, special ones included
    assert sums["kl_positions"] == 7 and sums["ce_positions"] == 5  # the last real token of row 1 has a KL, no CE


def random_sae(d: int, n_latents: int, k: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"W_enc": torch.randn(d, n_latents, generator=generator) / d**0.5, "b_enc": 0.1 * torch.randn(n_latents, generator=generator),
            "W_dec": torch.randn(n_latents, d, generator=generator) / d**0.5, "b_dec": 0.2 * torch.randn(d, generator=generator),
            "threshold": torch.zeros(n_latents), "k": torch.tensor([k])}


def per_batch_by_hand(x: np.ndarray, x_hat: np.ndarray, batches: list[list[int]]) -> dict:
    """SAEBench's aggregation, written out: token means for per-token values, plain means over batches for
    the relative reconstruction bias and for the pieces of its explained variance."""
    legacy, mse, bias, mean_sq_norm, mean_sq_error = [], [], [], [], []
    for rows in batches:
        h, h_hat = x[rows], x_hat[rows]
        error = ((h - h_hat) ** 2).sum(1)
        centered = ((h - h.mean(0)) ** 2).sum(1)
        legacy += list(1 - error / centered)
        mse += list(error / len(rows))
        bias.append(((h_hat**2).sum(1)).mean() / (h * h_hat).sum(1).mean())
        mean_sq_norm.append((h**2).sum(1).mean())
        mean_sq_error.append(error.mean())
    d = x.shape[1]
    a = np.mean(mean_sq_norm)
    all_error = ((x - x_hat) ** 2).sum(1)
    return {
        "explained_variance": 1 - np.mean(mean_sq_error) / (a - (a / d) ** 2),
        "explained_variance_centered": 1 - all_error.mean() / ((x**2).sum(1).mean() - (x.mean(0) ** 2).sum()),
        "explained_variance_legacy": np.mean(legacy),
        "relative_reconstruction_bias": np.mean(bias),
        "mse": np.mean(mse),
        "mse_per_element": all_error.mean() / d,
    }


def test_per_batch_metrics_follow_saebench_over_batches_of_examples():
    d, lengths, prompts_per_batch = 6, [3, 5, 2, 4, 1, 6, 2], 3
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(sum(lengths), d, generator=generator) + torch.linspace(-1, 2, d)  # a mean far from 0
    owners = np.repeat(np.arange(len(lengths)), lengths)
    sae = random_sae(d, 16, 3, seed=2)
    metrics, _ = sparsity_and_variance(sae, x, owners, prompts_per_batch)

    x_hat = decode(sae, encode(sae, x)).double().numpy()
    batches = [list(np.flatnonzero(np.isin(owners, range(s, s + prompts_per_batch)))) for s in range(0, len(lengths), prompts_per_batch)]
    assert [len(b) for b in batches] == [10, 11, 2]  # unequal batches: plain and token-weighted means differ
    expected = per_batch_by_hand(x.double().numpy(), x_hat, batches)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5), key
    assert metrics["explained_variance"] != pytest.approx(metrics["explained_variance_centered"], rel=1e-3)
    assert metrics["tokens"] == len(x)


def test_unscored_tokens_are_left_out_of_every_batch():
    d, lengths = 4, [3, 3, 3, 3]
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(12, d, generator=generator)
    owners = np.repeat(np.arange(4), lengths)
    scored = torch.ones(12, dtype=torch.bool)
    scored[[0, 3, 6, 9]] = False  # each example's first token (a BOS, say)
    sae = random_sae(d, 8, 2, seed=4)
    metrics, features = sparsity_and_variance(sae, x, owners, 2, scored=scored)
    kept, kept_owners = x[scored], owners[scored.numpy()]
    alone, alone_features = sparsity_and_variance(sae, kept, kept_owners, 2)
    for key in ("explained_variance", "explained_variance_legacy", "relative_reconstruction_bias", "mse", "l0", "cossim"):
        assert metrics[key] == pytest.approx(alone[key], rel=1e-6), key
    assert torch.allclose(features["feature_density"], alone_features["feature_density"])
    assert metrics["tokens"] == 12 and alone["tokens"] == 8  # token_stats count every token, as SAEBench's
