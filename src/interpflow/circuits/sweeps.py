"""The circuit benchmark's threshold sweeps: which circuits each discovery method is asked for.

A sweep turns into each method's grid parameter (``circuits.sweep`` names one of ``circuits.sweeps``):

- ``interpbench``: InterpBench's. Every method runs over one grid, ``sweeps.interpbench.thresholds``:
  ACDC's tau, node and edge SP's lambda, and for EAP / EAP-IG the circuit of every edge with
  |score| > t. InterpBench's grid (19 values, 0 to 1000) is in ``experiments/commands/
  circuit_discovery_config.py`` of its repository (branch ``cybershiptrooper/new_experiments``).
- ``score_levels``: each method its own grid: ACDC over ``acdc_thresholds`` (auto-circuit's tau
  grid), SP over ``sp_lambdas``, and EAP / EAP-IG over up to ``max_levels`` of their own |score|
  levels (every edge with |score| >= the level), so each new circuit adds the next tied edges.

Here, not in discovery/, so the Snakefile can read it without importing TransformerLens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# The parameter each method's config class (discovery/) takes its grid in.
GRID_PARAMETER = {"acdc": "thresholds", "sp_node": "lambdas", "sp_edge": "lambdas",
                  "eap": "thresholds", "eap_ig": "thresholds"}


def _one_grid(sweeps: dict, method: str) -> dict:
    return {GRID_PARAMETER[method]: list(sweeps["interpbench"]["thresholds"])}


def _own_grids(sweeps: dict, method: str) -> dict:
    own = sweeps["score_levels"]
    if method in ("eap", "eap_ig"):
        return {"max_thresholds": own["max_levels"]}
    grid = own["acdc_thresholds"] if method == "acdc" else own["sp_lambdas"]
    return {GRID_PARAMETER[method]: list(grid)}


@dataclass(frozen=True)
class Sweep:
    grids: Callable[[dict, str], dict]
    """(``circuits.sweeps``, method) -> the method's grid parameter."""
    summary: str
    """What the sweep does, for the leaderboard."""


SWEEPS: dict[str, Sweep] = {
    "interpbench": Sweep(_one_grid, "InterpBench's: every method over one threshold grid (ACDC's tau, SP's "
                                    "lambda, EAP and EAP-IG the edges with |score| > t)"),
    "score_levels": Sweep(_own_grids, "each method its own grid (ACDC auto-circuit's tau grid, SP its lambdas, "
                                      "EAP and EAP-IG their own |score| levels)"),
}


def method_params(circuits: dict, method: str) -> dict:
    """The parameters ``method`` runs with: its ``circuits.methods`` settings and the grid that the
    sweep ``circuits.sweep`` gives it."""
    sweep = circuits["sweep"]
    if sweep not in SWEEPS:
        raise ValueError(f"circuits.sweep is {sweep!r}; known sweeps: {', '.join(SWEEPS)}")
    if method not in GRID_PARAMETER:
        raise ValueError(f"unknown discovery method {method!r}; known: {sorted(GRID_PARAMETER)}")
    return {**(circuits["methods"].get(method) or {}), **SWEEPS[sweep].grids(circuits["sweeps"], method)}
