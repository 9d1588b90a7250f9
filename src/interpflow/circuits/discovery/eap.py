"""Edge attribution patching (Syed et al. 2023): a first-order estimate of every edge's effect.

score(u -> d) = (corrupt_u - clean_u) . d loss / d (input of d), summed over examples and
positions, from one forward and one backward pass on the clean input. It equals the gradient of
the loss with respect to the edge's patch mask at 0 (auto-circuit's formulation). The loss is
:func:`interpflow.circuits.objective.gradient_loss` (InterpBench's choice for categorical tasks;
the KL to the clean output has zero gradient there) unless ``loss="distance"``. Circuits are
thresholds over |score|: a fixed grid (``thresholds``, |score| > t, InterpBench's sweep) or the
scores' own levels (``max_thresholds``).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from interpflow.circuits.discovery.base import config_from
from interpflow.circuits.objective import MetricKind, distance, gradient_loss
from interpflow.circuits.patching import EdgePatcher
from interpflow.circuits.scoring import sweep_from_scores, sweep_over_grid


@dataclass(frozen=True)
class EAPConfig:
    loss: str = "label"
    """"label": gradient_loss (cross-entropy to the clean argmax / output projection); "distance": KL or MSE to the clean output."""
    thresholds: tuple[float, ...] | None = None
    """A fixed grid: one circuit per t, the edges with |score| > t. None: the score levels (below)."""
    max_thresholds: int = 50
    """Without a grid: at most this many circuits, at evenly spaced ranks of the score levels."""
    absolute: bool = True
    """Rank edges by |score| (a patch that helps the task is as important as one that hurts it)."""
    skip_first: bool = True
    """Leave position 0 (BOS) out of the loss."""


def loss_function(patcher: EdgePatcher, kind: MetricKind, loss: str, skip_first: bool):
    if loss == "label":
        return lambda logits: gradient_loss(logits, patcher.clean_logits, patcher.corrupt_logits, kind, skip_first)
    if loss == "distance":
        return lambda logits: distance(logits, patcher.clean_logits, kind, skip_first)
    raise ValueError(f"loss must be 'label' or 'distance', not {loss!r}")


def run(patcher: EdgePatcher, kind: MetricKind, params: dict | None = None,
        noise_floor: float = 0.0) -> pd.DataFrame:
    cfg = config_from(EAPConfig, params, "eap")
    grads = patcher.input_gradients(loss_function(patcher, kind, cfg.loss, cfg.skip_first))
    return edge_sweep(patcher, patcher.attribute(grads), cfg, noise_floor)


def edge_sweep(patcher: EdgePatcher, scores, cfg, noise_floor: float) -> pd.DataFrame:
    """The circuits of an EAP-style config (``thresholds``, ``max_thresholds``, ``absolute``) over edge scores."""
    if cfg.thresholds is not None:
        return sweep_over_grid(patcher.edges, scores, cfg.thresholds, cfg.absolute, noise_floor)
    return sweep_from_scores(patcher.edges, scores, cfg.max_thresholds, cfg.absolute, noise_floor)
