"""ACDC on compiled Tracr models recovers their known circuits (InterpBench's sanity check)."""

from __future__ import annotations

import pytest
import torch

from interpflow.circuits.discovery import discover
from interpflow.circuits.scoring import aurocs, score_sweep
from interpflow.circuits.siit import Objective, effect_summary, node_effects
from interpflow.circuits.stages import circuit_components, clean_and_corrupt, task_inputs
from interpflow.circuits.tracr_model import compile_task


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("task", ["sort", "dedupe", "trend", "affine_mod"])
def test_acdc_recovers_the_tracr_circuit(task):
    model = compile_task(task)
    clean, corrupt = clean_and_corrupt(model, {"n_examples": 64, "seed": 0})
    assert not any(torch.equal(a, b) for a, b in zip(clean, corrupt))
    sweep = discover("acdc", model.model, clean, corrupt, "kl" if model.categorical else "mse")
    scores = aurocs(score_sweep(sweep, model.circuit, model.graph))
    assert scores["edge_auroc"] >= 0.95, scores  # measured 1.0 on each


@pytest.mark.parametrize("task", ["sort", "dedupe"])
def test_resample_ablation_moves_the_output_only_through_circuit_nodes(task):
    """InterpBench's `iit` check on a model whose circuit is exact: every circuit node matters, the
    compiled model's unused head and MLP do nothing."""
    model = compile_task(task)
    effects = node_effects(model.model, task_inputs(model, 200, 0), Objective(model.categorical, 1e-3),
                           sorted(circuit_components(model)), seed=0)
    inside = [e["effect"] for e in effects if e["in_circuit"]]
    outside = [e["effect"] for e in effects if not e["in_circuit"]]
    assert len(inside) == 4 and len(outside) == 2
    assert min(inside) > 0.5 and max(outside) == 0.0, effects  # measured 0.82-0.96 inside
    summary = effect_summary(effects)
    assert summary["mean_effect_outside_circuit"] == 0.0 and summary["mean_effect_in_circuit"] > 0.5
