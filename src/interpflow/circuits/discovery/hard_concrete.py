"""Hard-concrete masks (Louizos et al. 2018), as subnetwork probing uses them (Cao et al. 2021;
the constants and the initialisation are theirs, as in ACDC's and auto-circuit's SP).

A mask value is sampled from a stretched, clipped concrete distribution with learned location
``logits``; ``penalty`` is the expected fraction of masks that are non-zero (the L0 norm relaxed).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

GAMMA, ZETA, BETA = -0.1, 1.1, 2 / 3   # stretch interval (gamma, zeta) and temperature beta
INIT_KEEP = 0.9                        # initial mask value, so training starts near the full model


def initial_logits(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    p = (INIT_KEEP - GAMMA) / (ZETA - GAMMA)
    return torch.full((n,), math.log(p / (1 - p)), device=device)


def sample(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(logits.shape, generator=generator).clamp(1e-4, 1 - 1e-4).to(logits.device)
    s = torch.sigmoid((u.log() - (1 - u).log() + logits) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def final(logits: torch.Tensor) -> torch.Tensor:
    """The noise-free mask value; a component is in the circuit when it is >= 0.5."""
    return (torch.sigmoid(logits) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def penalty(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits - BETA * math.log(-GAMMA / ZETA)).mean()


def train(n: int, faithfulness: Callable[[torch.Tensor], torch.Tensor], lam: float, steps: int, lr: float,
          seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Learn ``n`` masks minimising faithfulness(mask) + lam * penalty; returns their final values."""
    generator = torch.Generator().manual_seed(seed)
    logits = initial_logits(n, device).requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        loss = faithfulness(sample(logits, generator)) + lam * penalty(logits)
        (logits.grad,) = torch.autograd.grad(loss, [logits])  # the model's own weights get no gradient
        optimizer.step()
    return final(logits.detach())
