"""Subnetwork probing over nodes (Cao et al. 2021, as ACDC and InterpBench run it).

Every head and MLP gets a hard-concrete mask m; the model runs with each node's output replaced by
m * clean + (1 - m) * corrupted wherever it is read. The masks are trained to keep the output
(KL or MSE to the clean output) while lambda times the expected number of open masks pushes them
shut. Each lambda of the sweep is one run: nodes whose final mask is >= 0.5 are kept, and the
circuit is every edge between kept nodes (the embeddings and the output are always kept). An
edge's ``score`` is the smaller mask of its two ends.

InterpBench's SP: Adam, lr 0.01, 300 to 500 epochs over the whole data set per lambda.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from interpflow.circuits.discovery import hard_concrete
from interpflow.circuits.discovery.base import config_from
from interpflow.circuits.graph import normalise_node, output_node
from interpflow.circuits.objective import MetricKind, distance
from interpflow.circuits.patching import EdgePatcher
from interpflow.circuits.scoring import sweep_table

DEFAULT_LAMBDAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class SPConfig:
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    """Regularisation weights, one circuit each."""
    steps: int = 300
    """Optimiser steps per lambda, each on the whole batch (InterpBench: 300 to 500 epochs)."""
    lr: float = 0.01
    """Adam learning rate (InterpBench's)."""
    seed: int = 0
    skip_first: bool = True


def run(patcher: EdgePatcher, kind: MetricKind, params: dict | None = None) -> pd.DataFrame:
    cfg = config_from(SPConfig, params, "sp_node")
    n_nodes = len(patcher.upstream) - 1  # the embeddings (index 0) are never masked

    def faithfulness(mask: torch.Tensor) -> torch.Tensor:
        keep = torch.cat([mask.new_ones(1), mask])
        return distance(patcher.run(patcher.patch_from_nodes(keep)), patcher.clean_logits, kind, cfg.skip_first)

    out_name = output_node(patcher.graph.n_layers)
    down_index = torch.tensor([-1 if normalise_node(d) == out_name else patcher.up_index[normalise_node(d)]
                               for _, d in patcher.edges], device=patcher.device)
    scores = []
    for lam in cfg.lambdas:
        trained = hard_concrete.train(n_nodes, faithfulness, lam, cfg.steps, cfg.lr, cfg.seed, patcher.device)
        one = trained.new_ones(1)
        keep = torch.cat([one, trained, one])  # the embeddings first; the output last, for index -1
        scores.append(torch.minimum(keep[patcher.edge_up], keep[down_index]).cpu().numpy())
    scores = np.stack(scores)
    return sweep_table(patcher.edges, cfg.lambdas, scores, scores >= 0.5)
