"""What circuit discovery compares a patched model's output with.

Outputs are ``[batch, pos, d_vocab_out]``. Position 0 (BOS) is never scored (as in SIIT training
and InterpBench's ``not_first_seq`` output slice) unless ``skip_first`` is False.

- ``distance``: how far a patched output is from the clean one: KL(clean || patched), summed over
  the vocabulary and averaged over examples and positions, for categorical outputs (``"kl"``);
  mean squared error for numerical ones (``"mse"``). ACDC, SP and node realism use it.
- ``gradient_loss``: what EAP differentiates. ``distance`` is at its minimum at the clean output,
  so its gradient there is zero; InterpBench's EAP uses the KL to the one-hot label instead, i.e.
  cross-entropy to the clean argmax (``"kl"``). For numerical outputs InterpBench's MAE against
  the label has no useful gradient when the label is the clean output itself, so we use the
  projection of the output onto (corrupted - clean) output: its gradient is the direction in
  which patching moves the output.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

MetricKind = Literal["kl", "mse"]
METRIC_KINDS = ("kl", "mse")


def check_kind(kind: str) -> MetricKind:
    if kind not in METRIC_KINDS:
        raise ValueError(f"metric kind must be one of {METRIC_KINDS}, not {kind!r}")
    return kind  # type: ignore[return-value]


def scored(logits: torch.Tensor, skip_first: bool = True) -> torch.Tensor:
    return logits[:, 1:] if skip_first else logits


def distance(out: torch.Tensor, clean: torch.Tensor, kind: MetricKind, skip_first: bool = True) -> torch.Tensor:
    out, clean = scored(out, skip_first), scored(clean, skip_first)
    if kind == "kl":
        logp, logq = F.log_softmax(out, dim=-1), F.log_softmax(clean, dim=-1)
        return (logq.exp() * (logq - logp)).sum(-1).mean()
    return F.mse_loss(out, clean)


def gradient_loss(out: torch.Tensor, clean: torch.Tensor, corrupt: torch.Tensor, kind: MetricKind,
                  skip_first: bool = True) -> torch.Tensor:
    out, clean, corrupt = (scored(t, skip_first) for t in (out, clean, corrupt))
    if kind == "kl":
        labels = clean.argmax(-1)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1))
    return (out * (corrupt - clean).detach()).mean()
