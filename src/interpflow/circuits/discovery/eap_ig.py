"""EAP with integrated gradients (Hanna et al. 2024).

EAP's gradient is replaced by its average along a path from the corrupted to the clean input:

- ``"embedding"`` (the paper's): the embeddings are interpolated,
  e_k = corrupt + (k / steps) (clean - corrupt) for k = 0 .. steps - 1, and
  score(u -> d) = (corrupt_u - clean_u) . mean_k d loss / d (input of d) at e_k;
- ``"mask"`` (auto-circuit's, which InterpBench runs): every edge's patch mask is set to
  k / steps for k = 0 .. steps and the gradients of the loss with respect to the masks are averaged.

Averaging over the path makes losses usable that have zero gradient at the clean input (KL or MSE
to the clean output, ``loss="distance"``).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from interpflow.circuits.discovery.base import config_from
from interpflow.circuits.discovery.eap import edge_sweep, loss_function
from interpflow.circuits.objective import MetricKind
from interpflow.circuits.patching import EdgePatcher


@dataclass(frozen=True)
class EAPIGConfig:
    steps: int = 10
    """Points on the path (Hanna et al. use 5 to 30; auto-circuit's IG samples likewise)."""
    interpolation: str = "embedding"
    """"embedding" (the paper) or "mask" (auto-circuit / InterpBench)."""
    loss: str = "label"
    """As for EAP: "label" or "distance"."""
    thresholds: tuple[float, ...] | None = None
    """As for EAP: a fixed grid (|score| > t), or None for the score levels."""
    max_thresholds: int = 50
    absolute: bool = True
    skip_first: bool = True


def run(patcher: EdgePatcher, kind: MetricKind, params: dict | None = None,
        noise_floor: float = 0.0) -> pd.DataFrame:
    cfg = config_from(EAPIGConfig, params, "eap_ig")
    if cfg.steps < 1:
        raise ValueError("eap_ig: steps must be at least 1")
    loss = loss_function(patcher, kind, cfg.loss, cfg.skip_first)
    if cfg.interpolation == "embedding":
        scores = _embedding_path(patcher, loss, cfg.steps)
    elif cfg.interpolation == "mask":
        scores = _mask_path(patcher, loss, cfg.steps)
    else:
        raise ValueError(f"eap_ig: interpolation must be 'embedding' or 'mask', not {cfg.interpolation!r}")
    return edge_sweep(patcher, scores, cfg, noise_floor)


def _embedding_path(patcher: EdgePatcher, loss, steps: int) -> torch.Tensor:
    clean, corrupt = patcher.clean_values[0], patcher.corrupt_values[0]
    total: dict[str, torch.Tensor] = {}
    for k in range(steps):
        grads = patcher.input_gradients(loss, embed=corrupt + (k / steps) * (clean - corrupt))
        for name, grad in grads.items():
            total[name] = total[name] + grad if name in total else grad
    return patcher.attribute({name: grad / steps for name, grad in total.items()})


def _mask_path(patcher: EdgePatcher, loss, steps: int) -> torch.Tensor:
    total = patcher.zeros()
    for k in range(steps + 1):
        patch = (patcher.zeros() + k / steps).requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss(patcher.run(patch)), [patch])
        total += grad
    return total / (steps + 1)
