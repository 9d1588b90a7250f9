"""Scoring found circuits against the ground truth, by InterpBench's rules.

A discovery method's output (its *sweep*) is a table with one row per (threshold, edge):
``threshold`` (the method's knob: a score level, ACDC's tau, SP's lambda), ``upstream``,
``downstream`` (a fine input: a head's q/k/v input, an MLP's input, or the output), ``score`` (the
method's number for that edge at that threshold) and ``in_circuit``. Each threshold is one circuit.

Comparison follows InterpBench (``circuits_benchmark/utils/circuit``): hypothesis, truth and full
graph are normalised the same way (q/k/v inputs promoted to the head, MLP input to the MLP,
embeddings as ``blocks.0.hook_resid_pre``) and the embeddings -> output edge is dropped; nodes are
the endpoints of the remaining edges. TP/FP/FN/TN are counted against the full graph. The headline
AUROC is InterpBench's (``pessimistic_roc.py``: monotone filter, pessimistic staircase, N/A as 0);
the trapezoid rule is kept beside it under its own name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from interpflow.circuits.graph import EMBED, Circuit, ModelGraph, normalise_edge, normalise_node, output_node
from interpflow.circuits.objective import MetricKind, distance

SWEEP_COLUMNS = ["threshold", "upstream", "downstream", "score", "in_circuit"]


def sweep_table(edges: Sequence[tuple[str, str]], thresholds: Sequence[float],
                scores: np.ndarray, in_circuit: np.ndarray) -> pd.DataFrame:
    """Rows for every (threshold, edge); ``scores`` and ``in_circuit`` are ``[thresholds, edges]``."""
    n_t, n_e = len(thresholds), len(edges)
    scores, in_circuit = np.asarray(scores, dtype=float), np.asarray(in_circuit, dtype=bool)
    if scores.shape != (n_t, n_e) or in_circuit.shape != (n_t, n_e):
        raise ValueError(f"expected [{n_t}, {n_e}] scores and flags, got {scores.shape}, {in_circuit.shape}")
    ups, downs = zip(*edges) if edges else ((), ())
    return pd.DataFrame({
        "threshold": np.repeat(np.asarray(thresholds, dtype=float), n_e),
        "upstream": np.tile(np.asarray(ups, dtype=object), n_t),
        "downstream": np.tile(np.asarray(downs, dtype=object), n_t),
        "score": scores.reshape(-1),
        "in_circuit": in_circuit.reshape(-1),
    })


def apply_noise_floor(scores: np.ndarray, noise_floor: float) -> np.ndarray:
    """``scores`` with every |s| <= noise_floor * max|s| set to 0: float round-off beside exact
    zeros (1e-20 against 0) must tie with them, not rank above them."""
    scores = np.asarray(scores, dtype=float)
    if not 0.0 <= noise_floor < 1.0:
        raise ValueError(f"noise_floor must be in [0, 1), not {noise_floor!r}")
    if not scores.size:
        return scores
    return np.where(np.abs(scores) <= noise_floor * np.nanmax(np.abs(scores)), 0.0, scores)


def sweep_from_scores(edges: Sequence[tuple[str, str]], scores: Sequence[float] | torch.Tensor,
                      max_thresholds: int | None = 50, absolute: bool = True,
                      noise_floor: float = 0.0) -> pd.DataFrame:
    """Circuits from per-edge scores: at threshold t, every edge whose (absolute) score is >= t.

    Scores within ``noise_floor`` of zero (relative to the largest, :func:`apply_noise_floor`)
    are zero first. Thresholds are the distinct score levels, high to low, so tied edges enter
    together; with more than ``max_thresholds`` levels, evenly spaced ranks among them (always the
    highest and lowest).
    """
    raw = np.asarray(torch.as_tensor(scores, dtype=torch.float64).cpu(), dtype=float)
    raw = apply_noise_floor(raw, noise_floor)
    values = np.abs(raw) if absolute else raw
    levels = np.unique(values)[::-1]
    if max_thresholds and len(levels) > max_thresholds:
        levels = levels[np.unique(np.linspace(0, len(levels) - 1, max_thresholds).round().astype(int))]
    flags = values[None, :] >= levels[:, None]
    return sweep_table(edges, levels, np.broadcast_to(raw, flags.shape), flags)



def sweep_over_grid(edges: Sequence[tuple[str, str]], scores: Sequence[float] | torch.Tensor,
                    thresholds: Sequence[float], absolute: bool = True, noise_floor: float = 0.0) -> pd.DataFrame:
    """Circuits from per-edge scores over a fixed grid (InterpBench's sweep): at threshold t, every
    edge whose (absolute) score is > t, strictly (its ``build_circuit``: ``score > threshold``).
    Scores within ``noise_floor`` of zero count as zero first, as in :func:`sweep_from_scores`."""
    raw = apply_noise_floor(np.asarray(torch.as_tensor(scores, dtype=torch.float64).cpu(), dtype=float), noise_floor)
    values = np.abs(raw) if absolute else raw
    grid = np.asarray(thresholds, dtype=float)
    flags = values[None, :] > grid[:, None]
    return sweep_table(edges, grid, np.broadcast_to(raw, flags.shape), flags)


def evaluation_edges(graph: ModelGraph) -> set[tuple[str, str]]:
    """The full graph's edges as InterpBench scores them: normalised, embeddings -> output dropped."""
    return _drop_embed_output({normalise_edge(e) for e in graph.edges}, graph)


def _drop_embed_output(edges: Iterable[tuple[str, str]], graph: ModelGraph) -> set[tuple[str, str]]:
    skip = (EMBED, output_node(graph.n_layers))
    return {e for e in edges if e != skip}


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def tpr(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else float("nan")


def confusion(found: set, truth: set, universe: set) -> Confusion:
    if not found <= universe or not truth <= universe:
        raise ValueError(f"not in the full graph: {sorted((found | truth) - universe)[:5]}")
    return Confusion(len(found & truth), len(found - truth), len(truth - found), len(universe - found - truth))


def compare(found_edges: Iterable[tuple[str, str]], truth: Circuit, graph: ModelGraph) -> dict[str, Confusion]:
    """Node and edge confusion of a hypothesis (fine or normalised edges) against the truth."""
    universe = evaluation_edges(graph)
    found = _drop_embed_output({normalise_edge(tuple(e)) for e in found_edges}, graph)
    true = _drop_embed_output({normalise_edge(e) for e in truth.edges}, graph)
    return {"nodes": confusion(_nodes(found), _nodes(true), _nodes(universe)),
            "edges": confusion(found, true, universe)}


def _nodes(edges: set[tuple[str, str]]) -> set[str]:
    return {node for edge in edges for node in edge}


def found_circuits(sweep: pd.DataFrame) -> dict[float, Circuit]:
    """The circuit (normalised) at each threshold of a sweep, thresholds ascending."""
    circuits = {}
    for threshold, group in sweep.groupby("threshold", sort=True):
        kept = group[group["in_circuit"]]
        circuits[float(threshold)] = Circuit.from_edges(zip(kept["upstream"], kept["downstream"]))
    return circuits


def score_sweep(sweep: pd.DataFrame, truth: Circuit, graph: ModelGraph) -> pd.DataFrame:
    """Per threshold of a sweep: node and edge TP, FP, FN, TN, TPR and FPR."""
    rows = []
    for threshold, circuit in found_circuits(sweep).items():
        result = compare(circuit.edges, truth, graph)
        row = {"threshold": threshold}
        for kind, conf in result.items():
            prefix = kind[:-1]  # node, edge
            row.update({f"{prefix}_tp": conf.tp, f"{prefix}_fp": conf.fp, f"{prefix}_fn": conf.fn,
                        f"{prefix}_tn": conf.tn, f"{prefix}_tpr": conf.tpr, f"{prefix}_fpr": conf.fpr})
        rows.append(row)
    return pd.DataFrame(rows)


def interpbench_curve(fpr: Sequence[float], tpr: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """InterpBench's ROC of a sweep (``make_monotonically_increasing`` and the comparison notebook's
    ``get_xy``): undefined rates (its "N/A", NaN here) count as 0; the points sorted by FPR, then
    TPR; a point whose TPR falls below the last point kept is dropped; (0, 0) and (1, 1) added."""
    x = np.nan_to_num(np.asarray(fpr, dtype=float), nan=0.0)
    y = np.nan_to_num(np.asarray(tpr, dtype=float), nan=0.0)
    order = np.lexsort((y, x))
    kept_x, kept_y = [], []
    for xi, yi in zip(x[order], y[order]):
        if not kept_y or yi >= kept_y[-1]:
            kept_x.append(xi)
            kept_y.append(yi)
    return np.array([0.0, *kept_x, 1.0]), np.array([0.0, *kept_y, 1.0])


def auroc(fpr: Sequence[float], tpr: Sequence[float]) -> float:
    """The headline AUROC, InterpBench's ``pessimistic_auc`` over :func:`interpbench_curve`:
    sum over steps of (1 - x_{i+1}) (y_{i+1} - y_i), the staircase that holds each TPR until the
    next point's FPR, so it never credits the line between two circuits. One point (0.2, 0.8) gives
    0.64 (the trapezoid 0.80). Undefined rates count as 0, so a circuit that is the whole model (no
    negatives: every FPR undefined) scores the highest TPR its sweep reaches."""
    x, y = interpbench_curve(fpr, tpr)
    return float(np.sum((1.0 - x[1:]) * np.diff(y)))


def trapezoid_curve(fpr: Sequence[float], tpr: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's (FPR, TPR) points sorted by FPR (then TPR), with (0, 0) and (1, 1) added; points
    with an undefined rate left out; no monotone filter."""
    x, y = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = np.concatenate([[0.0], x[ok], [1.0]]), np.concatenate([[0.0], y[ok], [1.0]])
    order = np.lexsort((y, x))
    return x[order], y[order]


def auroc_trapezoid(fpr: Sequence[float], tpr: Sequence[float]) -> float:
    """The trapezoid rule (auto-circuit's ``measurements_auc``) over :func:`trapezoid_curve`. Not
    auto-circuit's number: auto-circuit counts raw edges of its own graph and floors the area at
    1e-3; here the points are InterpBench's normalised nodes and edges. NaN when a rate is
    undefined at every threshold (no negatives, or no positives)."""
    rates = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
    if len(rates[0]) and (np.isnan(rates[0]).all() or np.isnan(rates[1]).all()):
        return float("nan")
    x, y = trapezoid_curve(fpr, tpr)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def aurocs(scored: pd.DataFrame) -> dict[str, float]:
    """Node and edge AUROC of a :func:`score_sweep` table: ``*_auroc`` by InterpBench's rule (the
    headline), ``*_auroc_trapezoid`` by the trapezoid rule."""
    result = {}
    for kind in ("node", "edge"):
        rates = scored[f"{kind}_fpr"], scored[f"{kind}_tpr"]
        result[f"{kind}_auroc"] = auroc(*rates)
        result[f"{kind}_auroc_trapezoid"] = auroc_trapezoid(*rates)
    return result


def node_realism(patcher, nodes: Iterable[str], kind: MetricKind, skip_first: bool = True) -> dict[str, float]:
    """Keep ``nodes`` (and the embeddings), patch every other head and MLP to its corrupted output,
    and measure how far the output moves from the full model's: ``circuit_distance``; the same
    for every node patched (the corrupted run): ``corrupt_distance``; and ``faithfulness`` =
    1 - circuit / corrupt distance (1: the circuit alone does what the model does)."""
    kept = {normalise_node(n) for n in nodes} | {EMBED}
    keep = torch.tensor([1.0 if n in kept else 0.0 for n in patcher.upstream], device=patcher.device)
    with torch.no_grad():
        out = patcher.run(patcher.patch_from_nodes(keep))
        circuit = distance(out, patcher.clean_logits, kind, skip_first).item()
        corrupt = distance(patcher.corrupt_logits, patcher.clean_logits, kind, skip_first).item()
    return {"circuit_distance": circuit, "corrupt_distance": corrupt,
            "faithfulness": 1.0 - circuit / corrupt if corrupt > 0 else float("nan"),
            "n_nodes": len(kept & set(patcher.upstream))}
