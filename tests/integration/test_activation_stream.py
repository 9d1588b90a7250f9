"""The activation cache is written batch by batch to its rows on disk; it must equal the in-memory result."""

from __future__ import annotations

import pandas as pd
import torch

from interpflow.artifacts import read_parquet, read_tensors, write_parquet
from interpflow.models.loading import load_model
from interpflow.stages.activations import activations_for, cache_activations


def test_streamed_cache_equals_in_memory_activations(tmp_path, tiny_model_dir, tiny_model_cfg):
    responses = ["Short.", "A somewhat longer answer about the sea.", "Mid length reply.", "x " * 30, "Two words"]
    frame = pd.DataFrame({
        "example_id": range(5), "concept_id": [0, 0, 1, 1, -1], "label": [1, 0, 1, 0, 0],
        "category": ["positive", "negative", "positive", "negative", "negative"], "genre": "text",
        "input": [f"Question {i}?" for i in range(5)], "output": responses,
    })
    write_parquet(frame, tmp_path / "data.parquet")
    act_cfg = {"batch_size": 2, "max_length": 64, "dtype": "float32"}
    out, out_index = tmp_path / "acts.safetensors", tmp_path / "acts.index.parquet"
    cache_activations(str(tiny_model_dir), tiny_model_cfg, 2, act_cfg, str(tmp_path / "data.parquet"), str(out), str(out_index))

    model, tokenizer = load_model(tiny_model_dir)
    expected = activations_for(model, tokenizer, tiny_model_cfg, 2, frame["input"].tolist(), responses, 2, 64)
    cached, index = read_tensors(out), read_parquet(out_index)
    assert torch.allclose(cached["acts"], torch.cat(expected), atol=1e-6)
    assert index["n_tokens"].tolist() == [len(a) for a in expected]
    assert cached["offsets"].tolist() == [0, *torch.tensor(index["n_tokens"].tolist()).cumsum(0).tolist()]
    assert (index["offset"] == cached["offsets"][:-1].numpy()).all()
