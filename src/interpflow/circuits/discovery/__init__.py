"""Circuit-discovery methods (InterpBench's: ACDC, EAP, EAP-IG, node and edge SP) and their registry.

Every method takes an :class:`~interpflow.circuits.patching.EdgePatcher`, the metric kind and a
plain dict of parameters, and returns a sweep table (see :mod:`interpflow.circuits.scoring`): one
row per (threshold, fine edge) with columns ``threshold, upstream, downstream, score, in_circuit``.

Why not auto-circuit (1.0.1, what InterpBench runs ACDC, SP and EAP through): it does not import
with transformer-lens 3.9. ``import auto_circuit.utils.graph_utils`` fails with ``ImportError:
cannot import name 'HookedTransformerKeyValueCache' from 'transformer_lens'``: TransformerLens 3
renamed the class ``TransformerLensKeyValueCache`` and removed the module
``transformer_lens.past_key_value_caching`` that ``auto_circuit/data.py`` and
``utils/patchable_model.py`` import. (Installing it would not change torch, transformer-lens or
numpy, but brings jax, jaxlib, dm-haiku, chex, tracr-pypi, kaleido and word2word.) With both names
aliased, in a throwaway venv only, it runs on TransformerLens 3.9; there, on the planted-circuit
model of ``tests/integration/test_circuit_discovery.py``, this package's EAP scores match its
mask-gradient scores within 1.2e-6 on every shared edge, its mask-path EAP-IG within 2.4e-7, and
ACDC keeps the same edges at all 20 default taus.
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interpflow.circuits import RANKS_BY_SCORE
from interpflow.circuits.discovery import acdc, eap, eap_ig, sp_edge, sp_node
from interpflow.circuits.objective import check_kind
from interpflow.circuits.patching import EdgePatcher
from interpflow.torch_threads import torch_threads

Method = Callable[[EdgePatcher, str, "dict | None"], pd.DataFrame]
RankingMethod = Callable[[EdgePatcher, str, "dict | None", float], pd.DataFrame]

# Methods whose circuits are thresholds over their edge scores (RANKS_BY_SCORE): the noise floor applies
# to those scores.
RANKING_METHODS: dict[str, RankingMethod] = {
    "eap": eap.run,
    "eap_ig": eap_ig.run,
}
assert set(RANKING_METHODS) == RANKS_BY_SCORE
# Methods that decide each circuit by their own knob (ACDC's tau, SP's mask >= 0.5).
DECIDING_METHODS: dict[str, Method] = {
    "acdc": acdc.run,
    "sp_node": sp_node.run,
    "sp_edge": sp_edge.run,
}
METHODS = {**DECIDING_METHODS, **RANKING_METHODS}


def discover(method: str, model: HookedTransformer, clean_tokens: torch.Tensor, corrupt_tokens: torch.Tensor,
             metric_kind: str, params: dict[str, Any] | None = None, noise_floor: float = 0.0) -> pd.DataFrame:
    """Run ``method`` on ``model`` with clean/corrupted token batches (``[batch, pos]``, same shape).

    ``metric_kind``: ``"kl"`` (categorical outputs) or ``"mse"`` (numerical). ``params``: the
    method's config fields (see each module's dataclass), plus ``num_threads`` (torch threads for
    the run, default 1: these models are tiny, and on a loaded 2-core machine two threads made each
    forward pass about 20x slower). ``noise_floor``: for the methods that rank edges by score, scores
    with |s| <= noise_floor * max|s| count as 0 (``circuits.noise_floor``). Returns the sweep table,
    rows ordered by threshold then edge.
    """
    if method not in METHODS:
        raise ValueError(f"unknown discovery method {method!r}; known: {sorted(METHODS)}")
    kind = check_kind(metric_kind)
    params = dict(params or {})
    threads = int(params.pop("num_threads", 1))
    with torch_threads(threads):
        model.eval()
        patcher = EdgePatcher(model, clean_tokens, corrupt_tokens)
        if method in RANKING_METHODS:
            table = RANKING_METHODS[method](patcher, kind, params, noise_floor)
        else:
            table = DECIDING_METHODS[method](patcher, kind, params)
    return table.sort_values("threshold", kind="stable").reset_index(drop=True)
