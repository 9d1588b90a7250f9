"""Subnetwork probing over edges (InterpBench's edge-level SP).

As :mod:`sp_node`, with one hard-concrete mask per edge (upstream node -> a head's q/k/v input, an
MLP's input, or the output): the edge carries m * clean + (1 - m) * corrupted. Edges whose final
mask is >= 0.5 form the circuit; an edge's ``score`` is its final mask.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from interpflow.circuits.discovery import hard_concrete
from interpflow.circuits.discovery.base import config_from
from interpflow.circuits.discovery.sp_node import SPConfig
from interpflow.circuits.objective import MetricKind, distance
from interpflow.circuits.patching import EdgePatcher
from interpflow.circuits.scoring import sweep_table


def run(patcher: EdgePatcher, kind: MetricKind, params: dict | None = None) -> pd.DataFrame:
    cfg = config_from(SPConfig, params, "sp_edge")

    def faithfulness(mask: torch.Tensor) -> torch.Tensor:
        return distance(patcher.run(1.0 - mask), patcher.clean_logits, kind, cfg.skip_first)

    scores = np.stack([hard_concrete.train(patcher.n_edges, faithfulness, lam, cfg.steps, cfg.lr, cfg.seed,
                                           patcher.device).cpu().numpy() for lam in cfg.lambdas])
    return sweep_table(patcher.edges, cfg.lambdas, scores, scores >= 0.5)
