"""Throughput of the activation-caching stage against a bare forward pass to block L and the
machine's FLOP bound, measured in one process.

All run on the same texts (the demo training set), same batches, same model and layer:
  bare:    the model's forward pass stopped after block L, outputs discarded
  caching: interpflow.stages.activations.activations_for (tokenise, the common start of every
           example once, batch by length, forward to block L, slice the scored tokens out)
  bound:   tokens/s the machine's fp32 matmul rate allows for blocks 0..L: rate / (2 x their weights),
           the rate the higher of two measurements, before and after the stage
Prints tokens/s of each (every token of every text counts, as in a full pass), plus full-depth
forward for reference. Last line: caching_vs_bare=... (target >= 0.8) caching_vs_flop_bound=...
(target >= 0.7) computed_vs_flop_bound=... (the tokens the stage actually runs, the shared start
counted once, against the same bound: how close its passes come to the matmul rate)

  python benchmarks/activation_caching.py [--model smollm2_135m] [--layer 15] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from interpflow.allocator import reuse_freed_memory
from interpflow.config import compose
from interpflow.data.sources.dataset import DatasetSource
from interpflow.models.formatting import scored_tokens
from interpflow.models.hooks import residual_after_block
from interpflow.models.loading import MANIFEST, load_model, prepare_model
from interpflow.models.shared_prefix import SharedPrefix
from interpflow.stages.activations import activations_for

from _machine import flops_per_token, matmul_gflops

REPO = Path(__file__).resolve().parents[1]


def batches(examples, batch_size, pad_id):
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        rows = [examples[i].input_ids for i in order[start : start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        yield ids, mask


@torch.no_grad()
def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2_135m")
    parser.add_argument("--layer", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's activations.batch_size")
    parser.add_argument("--models-dir", default=str(REPO / "results" / "models"))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    reuse_freed_memory()  # as the `interpflow` command does for every stage

    cfg = compose(REPO / "config", [f"+model@models.{args.model}={args.model}"] if args.model != "smollm2_135m" else [])
    model_cfg = cfg["models"][args.model]
    layer = args.layer if args.layer is not None else model_cfg["layers"][0]
    batch_size = args.batch_size or cfg["activations"]["batch_size"]
    model_dir = Path(args.models_dir) / args.model
    if not (model_dir / MANIFEST).exists():
        prepare_model(model_cfg, model_dir)
    model, tokenizer = load_model(model_dir)

    source = DatasetSource(cfg["generator"])
    data = source.train_data(source.concepts())
    inputs, outputs = data["input"].tolist(), data["output"].tolist()
    examples = [scored_tokens(tokenizer, model_cfg, i, o, cfg["activations"]["max_length"]) for i, o in zip(inputs, outputs)]
    n_tokens = sum(len(e.input_ids) for e in examples)
    prefix = SharedPrefix.for_texts(model, layer, [e.input_ids for e in examples], min(e.score_start for e in examples))
    shared = prefix.length if prefix else 0  # what the stage runs once
    n_computed = n_tokens - (len(examples) - 1) * shared

    def bare():
        for ids, mask in batches(examples, batch_size, tokenizer.pad_token_id):
            residual_after_block(model, layer, ids, mask)

    def full():
        for ids, mask in batches(examples, batch_size, tokenizer.pad_token_id):
            model(input_ids=ids, attention_mask=mask, use_cache=False)

    def caching():
        activations_for(model, tokenizer, model_cfg, layer, inputs, outputs, batch_size, cfg["activations"]["max_length"])

    rates = [matmul_gflops()]
    bare()  # warm-up
    t_bare, t_cache = timed(bare), timed(caching)
    rates.append(matmul_gflops())
    t_full = timed(full)
    rate = max(rates)  # a slow moment of a shared machine must not flatter the ratio
    bound = rate * 1e9 / flops_per_token(model, layer + 1, lm_head=False)
    n_layers = model.config.num_hidden_layers
    print(f"model {args.model}, layer {layer} of {n_layers}, {len(examples)} texts, {n_tokens} tokens, "
          f"batch {batch_size}, {torch.get_num_threads()} threads")
    print(f"fp32 matmul 2048^2: {rate:.0f} GFLOP/s (the higher of {rates[0]:.0f} and {rates[1]:.0f}, measured before "
          f"and after the caching stage) -> FLOP bound {bound:.0f} tok/s through block {layer} "
          f"({flops_per_token(model, layer + 1, lm_head=False) / 1e9:.3f} GFLOP per token)")
    print(f"full-depth forward (with LM head): {n_tokens / t_full:8.0f} tok/s")
    print(f"bare forward to block {layer}:        {n_tokens / t_bare:8.0f} tok/s")
    print(f"caching stage:                    {n_tokens / t_cache:8.0f} tok/s "
          f"(runs {n_computed} tokens: the {shared}-token start every text shares once)")
    print(f"caching_vs_bare={t_bare / t_cache:.3f} caching_vs_flop_bound={n_tokens / t_cache / bound:.3f} "
          f"computed_vs_flop_bound={n_computed / t_cache / bound:.3f}")


if __name__ == "__main__":
    main()
