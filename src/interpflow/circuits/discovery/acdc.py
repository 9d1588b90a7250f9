"""ACDC (Conmy et al. 2023): greedy edge pruning by activation patching.

Starting from the full graph, visit every input that reads the residual stream in reverse
topological order (the output, then each layer's MLP input and head q/k/v inputs, from the last
layer to the first). For each of its incoming edges (latest upstream node first), patch the edge
to its corrupted value; if the distance to the clean output (KL or MSE) rises by less than tau,
leave it patched (removed), else restore it. An input whose node has no edge left to the output
has all its incoming edges removed untested (they can no longer change the output). Each tau of the
sweep is one independent run and one circuit; the ``score`` of an edge is the rise measured when
it was tested (NaN if it was removed untested).

InterpBench runs ACDC through auto-circuit with one tau per run; auto-circuit's default grid
{1, 3, 5, 7, 9} x 10^{-5..-2} is the default here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from interpflow.circuits.discovery.base import config_from
from interpflow.circuits.graph import node_layer, normalise_node, output_node
from interpflow.circuits.objective import MetricKind, distance
from interpflow.circuits.patching import EdgePatcher, downstream_inputs
from interpflow.circuits.scoring import sweep_table

DEFAULT_THRESHOLDS = tuple(sorted(base * 10.0 ** exp for base in (1, 3, 5, 7, 9) for exp in range(-5, -1)))


@dataclass(frozen=True)
class ACDCConfig:
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    """Values of tau, one circuit each."""
    skip_first: bool = True
    """Leave position 0 (BOS) out of the metric."""


def run(patcher: EdgePatcher, kind: MetricKind, params: dict | None = None) -> pd.DataFrame:
    cfg = config_from(ACDCConfig, params, "acdc")
    scores, kept = zip(*(_prune(patcher, kind, tau, cfg.skip_first) for tau in cfg.thresholds))
    return sweep_table(patcher.edges, cfg.thresholds, np.stack(scores), np.stack(kept))


@torch.no_grad()
def _prune(patcher: EdgePatcher, kind: MetricKind, tau: float, skip_first: bool) -> tuple[np.ndarray, np.ndarray]:
    graph = patcher.graph
    out_name = output_node(graph.n_layers)
    into: dict[str, list[int]] = {}
    for i, (_, down) in enumerate(patcher.edges):
        into.setdefault(down, []).append(i)
    up = patcher.edge_up.tolist()
    live_out = Counter(up)  # unpatched edges leaving each upstream node
    patch = patcher.zeros()
    effect = np.full(patcher.n_edges, np.nan)
    current = 0.0
    for down in reversed(downstream_inputs(graph)):
        edges = into.get(down, [])
        node = normalise_node(down)
        if node != out_name and live_out[patcher.up_index[node]] == 0:
            for i in edges:
                patch[i] = 1.0
                live_out[up[i]] -= 1
            continue
        for i in reversed(edges):
            patch[i] = 1.0
            logits = patcher.run(patch, start_layer=node_layer(down))
            value = distance(logits, patcher.clean_logits, kind, skip_first).item()
            effect[i] = value - current
            if value - current < tau:
                current = value
                live_out[up[i]] -= 1
            else:
                patch[i] = 0.0
    return effect, (patch == 0).cpu().numpy()
