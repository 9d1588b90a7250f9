"""A prepared model folder is self-contained: it loads from wherever it is read, under any working directory."""

from __future__ import annotations

import torch

from interpflow.models.loading import load_model, prepare_model


def test_a_prepared_folder_loads_from_another_working_directory(tiny_model_cfg, tiny_model_dir, tmp_path, monkeypatch):
    """Prepared under a relative models_dir (the default, results/models), then read by a job that
    runs elsewhere: another experiment's folder, or a cluster node."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    prepare_model(tiny_model_cfg, "results/models/tiny")
    monkeypatch.chdir(tmp_path / "second")
    model, tokenizer = load_model(tmp_path / "first/results/models/tiny", device="cpu")
    reference, _ = load_model(tiny_model_dir, device="cpu")
    ids = torch.tensor([tokenizer("a prepared model").input_ids])
    torch.testing.assert_close(model(ids).logits, reference(ids).logits)  # the tiny model is seeded
