"""What the machine allows: the fp32 matmul rate, and FLOPs per token of a model's blocks.

Benchmarks divide their tokens/s by rate / FLOPs-per-token measured in the same process, since
absolute speeds differ between machines of one kind by 2x."""

from __future__ import annotations

import time

import torch

from interpflow.models.architectures import decoder_blocks


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """fp32 GFLOP/s of a size x size matmul on this process's threads (best of `repeats`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def flops_per_token(model, n_blocks: int | None = None, lm_head: bool = True) -> float:
    """2 x the weights one token multiplies by in the first `n_blocks` blocks (all: None) and the
    LM head (the embedding lookup is free; attention over < 300 positions adds a few percent)."""
    blocks = decoder_blocks(model)[: n_blocks if n_blocks is not None else len(decoder_blocks(model))]
    weights = sum(p.numel() for p in blocks.parameters() if p.dim() == 2)
    if lm_head:
        weights += model.get_output_embeddings().weight.numel()
    return 2.0 * weights
