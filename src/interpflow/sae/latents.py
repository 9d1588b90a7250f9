"""Choosing an SAE latent for a concept: every latent scored on the training examples at once.

Scores are the latents as VectorMethod reads them (one JumpReLU unit each, no TopK across
latents), pooled over each example's tokens (max or mean), then ranked by ROC AUC. Everything is
done in chunks of latents, so a 16k-latent SAE never needs an [n_tokens, n_latents] matrix.
"""

from __future__ import annotations

import torch

POOLINGS = ("max", "mean")


def column_auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ROC AUC of every column of scores [n, m] against boolean labels [n]: [m].

    Mann-Whitney U with average ranks for ties (ties are common: a ReLU latent is 0 on most
    examples), i.e. P(score_pos > score_neg) + 0.5 P(tie).
    """
    labels = labels.bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs at least one positive and one negative example")
    s = scores.T.double().contiguous()  # [m, n]
    ordered = s.sort(dim=1).values
    below = torch.searchsorted(ordered, s, side="left")  # values strictly smaller
    upto = torch.searchsorted(ordered, s, side="right")  # values smaller or equal
    ranks = (below + upto + 1) / 2  # 1-based, ties share the mean rank
    rank_sum = ranks[:, labels].sum(dim=1)
    return ((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).float()


def pooled_latents(sae: dict[str, torch.Tensor], acts: torch.Tensor, example: torch.Tensor, n_examples: int,
                   latents: slice, pooling: str) -> torch.Tensor:
    """The `latents` of every token, gated by their thresholds and pooled per example: [n_examples, n_chunk]."""
    W = sae["W_enc"][:, latents].float()
    pre = (acts.float() - sae["b_dec"].float()) @ W + sae["b_enc"][latents].float()
    z = pre * (pre > sae["threshold"][latents].float())
    reduce = "amax" if pooling == "max" else "mean"
    out = torch.zeros(n_examples, z.shape[1])
    return out.scatter_reduce_(0, example[:, None].expand_as(z), z, reduce, include_self=False)


def latent_aucs(sae: dict[str, torch.Tensor], pos: torch.Tensor, pos_example: torch.Tensor, neg: torch.Tensor,
                neg_example: torch.Tensor | None, pooling: str, chunk: int = 2048) -> torch.Tensor:
    """Training ROC AUC of every latent: positive examples vs negative examples, example score =
    max or mean of the latent over the example's tokens. Without neg_example each negative token
    counts as one example. Returns [n_latents]."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if neg_example is None:
        neg_example = torch.arange(len(neg))
    n_pos, n_neg = int(pos_example.max()) + 1, int(neg_example.max()) + 1
    acts = torch.cat([pos, neg])
    example = torch.cat([pos_example, neg_example + n_pos]).long()
    labels = torch.cat([torch.ones(n_pos, dtype=torch.bool), torch.zeros(n_neg, dtype=torch.bool)])
    n_latents = sae["W_enc"].shape[1]
    aucs = [column_auc(pooled_latents(sae, acts, example, n_pos + n_neg, slice(start, start + chunk), pooling), labels)
            for start in range(0, n_latents, chunk)]
    return torch.cat(aucs)


def latent_artifact(sae: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """VectorMethod tensors for latent `index`: z(h) = gate(h . read + read_bias, threshold) is
    exactly the SAE's latent, and the write vector is its raw decoder row."""
    read = sae["W_enc"][:, index].float()
    return {
        "directions": sae["W_dec"][index].float().clone(),
        "read": read.clone(),
        "read_bias": sae["b_enc"][index].float() - sae["b_dec"].float() @ read,
        "threshold": sae["threshold"][index].float().clone(),
        "latent_index": torch.tensor([index]),
    }
