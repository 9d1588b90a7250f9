"""ACDC on compiled Tracr models recovers their known circuits (InterpBench's sanity check)."""

from __future__ import annotations

import pytest
import torch

from interpflow.circuits.discovery import discover
from interpflow.circuits.scoring import aurocs, score_sweep
from interpflow.circuits.stages import clean_and_corrupt
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
