"""Our SAE format: a plain dict of tensors, saved as safetensors with string metadata beside it.

    W_enc     [d, n_latents]   encoder (read) vectors, one column per latent
    b_enc     [n_latents]      encoder bias
    W_dec     [n_latents, d]   decoder (write) vectors, one row per latent
    b_dec     [d]              decoder bias, also subtracted from the input before encoding
    threshold [n_latents]      JumpReLU threshold (0 for ReLU SAEs and for TopK SAEs, see below)
    k         [1] (optional)   TopK SAEs only: at most k latents per token are kept by `encode`

    pre = (h - b_dec) @ W_enc + b_enc,   z = pre * (pre > threshold),   h_hat = z @ W_dec + b_dec

Every latent is therefore a JumpReLU unit read off the residual stream, which is exactly what
VectorMethod scores and clamps. For a TopK SAE, `encode` also keeps only the k largest latents of
each token (so reconstruction is the SAE's own); a single latent read on its own (detection,
clamping) is its ReLU pre-activation, which equals the TopK value whenever the latent is among
the token's k largest: the case that matters for a concept's latent on concept tokens.

Metadata (strings): `source` ("pretrained" or "train") and either release/sae_id/architecture
or the training config as JSON.
"""

from __future__ import annotations

import torch

from interpflow.errors import ConfigError

KEYS = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")


def check_sae(sae: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(d, n_latents) of a well-formed SAE dict; ConfigError naming what is wrong otherwise."""
    missing = [k for k in KEYS if k not in sae]
    if missing:
        raise ConfigError(f"SAE tensors lack {missing}; expected {list(KEYS)} (see interpflow.sae.format)")
    d, n = sae["W_enc"].shape
    shapes = {"b_enc": (n,), "W_dec": (n, d), "b_dec": (d,), "threshold": (n,)}
    for key, shape in shapes.items():
        if tuple(sae[key].shape) != shape:
            raise ConfigError(f"SAE tensor {key} has shape {tuple(sae[key].shape)}, expected {shape}")
    return d, n


def topk_of(sae: dict[str, torch.Tensor]) -> int:
    """k of a TopK SAE, 0 for JumpReLU / ReLU SAEs."""
    return int(sae["k"].item()) if "k" in sae else 0


def pre_activations(sae: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """(h - b_dec) @ W_enc + b_enc: [..., n_latents]."""
    return (h.float() - sae["b_dec"].float()) @ sae["W_enc"].float() + sae["b_enc"].float()


def encode(sae: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """Latents z [..., n_latents] of activations h [..., d]."""
    pre = pre_activations(sae, h)
    z = pre * (pre > sae["threshold"].float())
    k = topk_of(sae)
    if 0 < k < z.shape[-1]:
        values, indices = z.topk(k, dim=-1)
        z = torch.zeros_like(z).scatter_(-1, indices, values)
    return z


def decode(sae: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Reconstruction h_hat [..., d] of latents z [..., n_latents]."""
    return z @ sae["W_dec"].float() + sae["b_dec"].float()


def fraction_of_variance_explained(sae: dict[str, torch.Tensor], h: torch.Tensor, batch: int = 4096) -> float:
    """1 - sum ||h - h_hat||^2 / sum ||h - mean(h)||^2 over the rows of h."""
    h = h.float()
    error = sum(float(((x - decode(sae, encode(sae, x))) ** 2).sum()) for x in h.split(batch))
    total = float(((h - h.mean(dim=0)) ** 2).sum())
    return 1.0 - error / max(total, 1e-12)


def firing_counts(sae: dict[str, torch.Tensor], h: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """How many rows of h each latent fires on: [n_latents]."""
    return sum((encode(sae, x) > 0).sum(dim=0) for x in h.float().split(batch))
