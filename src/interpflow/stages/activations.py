"""Stage: cache the residual stream after block L for the scored tokens of every example.

One job per (model, layer, split, shard); every activation-only method reads the result.
The forward pass stops after block L, and the start every example shares (the chat template's
opening) runs once. Examples are batched by length to waste little on padding, and each batch is
written to the file as it comes, so memory does not grow with the shard.

Artifact: <out>.safetensors with `acts` [n_scored_tokens, d_model] (examples back to back) and
`offsets` [n_examples + 1]; <out>.index.parquet with example_id, concept_id, label, category,
genre, n_tokens, offset (one row per example, in the order of the data file).
"""

from __future__ import annotations

import time
from typing import Iterator

import torch

from interpflow.artifacts import RowStream, atomic_path, read_parquet, write_parquet
from interpflow.models.architectures import check_layer
from interpflow.models.formatting import scored_tokens
from interpflow.models.hooks import residual_after_block
from interpflow.models.loading import load_model
from interpflow.models.shared_prefix import SharedPrefix
from interpflow.progress import Progress


def scored_examples(tokenizer, model_cfg: dict, inputs: list[str], outputs: list[str], max_length: int) -> list:
    return [scored_tokens(tokenizer, model_cfg, i, o, max_length) for i, o in zip(inputs, outputs)]


@torch.no_grad()
def iter_activations(model, tokenizer, layer: int, examples: list, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(example index, its scored-token activations [n_i, d]), batch by batch, shortest examples first.

    The start every example shares (the chat template's opening) runs once; batches run the rest."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    sequences = [e.input_ids for e in examples]
    prefix = SharedPrefix.for_texts(model, layer, sequences, min((e.score_start for e in examples), default=0))
    skip = prefix.length if prefix else 0
    progress = Progress(f"activations after block {layer}", len(examples), "examples")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(sequences[i]) for i in rows) - skip
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):  # right padding: positions stay 0..n-1 for every row
            n = len(sequences[i]) - skip
            ids[r, :n] = torch.tensor(sequences[i][skip:])
            mask[r, :n] = 1
        ids, mask = ids.to(model.device), mask.to(model.device)
        hidden = prefix.residual(ids, mask) if prefix else residual_after_block(model, layer, ids, mask)
        hidden = hidden.float().cpu()
        for r, i in enumerate(rows):
            yield i, hidden[r, examples[i].score_start - skip : len(sequences[i]) - skip]
        progress.update(len(rows))


def activations_for(model, tokenizer, model_cfg: dict, layer: int, inputs: list[str], outputs: list[str],
                    batch_size: int, max_length: int) -> list[torch.Tensor]:
    """Scored-token activations of each (instruction, response) example: a list of [n_i, d] tensors."""
    examples = scored_examples(tokenizer, model_cfg, inputs, outputs, max_length)
    result: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    for i, acts in iter_activations(model, tokenizer, layer, examples, batch_size):
        result[i] = acts.clone()
    return result


def cache_activations(model_dir: str, model_cfg: dict, layer: int, act_cfg: dict, data: str, out: str, out_index: str) -> None:
    """Cache the scored-token activations after block `layer` for every example of a data file.

    Each batch goes straight to its rows of the output file, so memory holds one batch, however
    many examples the shard has."""
    frame = read_parquet(data)
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    check_layer(model, layer)
    examples = scored_examples(tokenizer, model_cfg, frame["input"].tolist(), frame["output"].tolist(), act_cfg["max_length"])
    lengths = torch.tensor([len(e.input_ids) - e.score_start for e in examples], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    start = time.perf_counter()
    with atomic_path(out) as tmp, open(tmp, "r+b") as file:
        stream = RowStream(file, "acts", int(offsets[-1]), model.config.hidden_size, getattr(torch, act_cfg["dtype"]),
                           {"offsets": offsets})
        for i, acts in iter_activations(model, tokenizer, layer, examples, act_cfg["batch_size"]):
            stream.write(int(offsets[i]), acts)
        seconds = time.perf_counter() - start
        stream.close({"model": model_cfg["name"], "layer": layer, "tokens_per_s": round(int(lengths.sum()) / seconds, 1)})
    index = frame[["example_id", "concept_id", "label", "category", "genre"]].copy()
    index["n_tokens"] = lengths.numpy()
    index["offset"] = offsets[:-1].numpy()
    write_parquet(index, out_index)
