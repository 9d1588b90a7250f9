"""Stage: cache the residual stream after block L for the scored tokens of every example.

One job per (model, layer, split, shard); every activation-only method reads the result.
The forward pass stops after block L. Examples are batched by length to waste little on padding.

Artifact: <out>.safetensors with `acts` [n_scored_tokens, d_model] (examples back to back) and
`offsets` [n_examples + 1]; <out>.index.parquet with example_id, concept_id, label, category,
genre, n_tokens, offset (one row per example, in the order of the data file).
"""

from __future__ import annotations

import time

import torch

from interpflow.artifacts import read_parquet, write_parquet, write_tensors
from interpflow.models.architectures import check_layer
from interpflow.models.formatting import scored_tokens
from interpflow.models.hooks import residual_after_block
from interpflow.models.loading import load_model


@torch.no_grad()
def activations_for(model, tokenizer, model_cfg: dict, layer: int, inputs: list[str], outputs: list[str],
                    batch_size: int, max_length: int) -> list[torch.Tensor]:
    """Scored-token activations of each (instruction, response) example: a list of [n_i, d] tensors."""
    examples = [scored_tokens(tokenizer, model_cfg, i, o, max_length) for i, o in zip(inputs, outputs)]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    result: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(examples[i].input_ids) for i in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):  # right padding: positions stay 0..n-1 for every row
            n = len(examples[i].input_ids)
            ids[r, :n] = torch.tensor(examples[i].input_ids)
            mask[r, :n] = 1
        hidden = residual_after_block(model, layer, ids.to(model.device), mask.to(model.device)).float().cpu()
        for r, i in enumerate(rows):
            result[i] = hidden[r, examples[i].score_start : len(examples[i].input_ids)].clone()
    return result


def cache_activations(model_dir: str, model_cfg: dict, layer: int, act_cfg: dict, data: str, out: str, out_index: str) -> None:
    """Cache the scored-token activations after block `layer` for every example of a data file."""
    frame = read_parquet(data)
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    check_layer(model, layer)
    start = time.perf_counter()
    per_example = activations_for(model, tokenizer, model_cfg, layer, frame["input"].tolist(), frame["output"].tolist(),
                                  act_cfg["batch_size"], act_cfg["max_length"])
    seconds = time.perf_counter() - start
    lengths = torch.tensor([len(a) for a in per_example])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    acts = torch.cat(per_example).to(getattr(torch, act_cfg["dtype"]))
    index = frame[["example_id", "concept_id", "label", "category", "genre"]].copy()
    index["n_tokens"] = lengths.numpy()
    index["offset"] = offsets[:-1].numpy()
    meta = {"model": model_cfg["name"], "layer": layer, "tokens_per_s": round(int(lengths.sum()) / seconds, 1)}
    write_tensors({"acts": acts, "offsets": offsets}, out, metadata=meta)
    write_parquet(index, out_index)
