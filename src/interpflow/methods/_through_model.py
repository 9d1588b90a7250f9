"""What the methods that train a vector through the frozen model share (SSV, ReFT-r1, RePS):
tokenised (instruction, response) examples, one batch of them, a hook that edits the residual
stream differentiably, the optimiser loop, and residual activations for detection without a cache.

The model's parameters stay frozen; only the method's vector gets gradients. Nothing up to block L
depends on the vector, so the residual stream after block L is computed once per example
(`PrefixCache`) and every training step runs, and back-propagates through, blocks L+1.. only.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import pandas as pd
import torch
from torch import nn

from interpflow.methods.data import ConceptData, ModelHandle
from interpflow.models.architectures import decoder_blocks
from interpflow.models.formatting import scored_tokens
from interpflow.models.hooks import residual_after_block
from interpflow.models.training import LMBatch, lm_batches, tokenize_pairs
from interpflow.ranges import COUNT, NON_NEGATIVE, RATE

# the settings of a vector trained through the model on a sample of the concept's examples (`fit`)
FIT_SETTINGS = {"lr": RATE, "weight_decay": NON_NEGATIVE, "epochs": COUNT, "batch_size": COUNT, "max_examples": COUNT,
                "max_response_tokens": COUNT}

TokenPairs = list[tuple[list[int], list[int]]]


def hidden_size(model) -> int:
    return int(model.config.hidden_size)


def concept_generator(concept: ConceptData) -> torch.Generator:
    """A generator seeded by the experiment seed and the concept: same data, same run, same vector."""
    return torch.Generator().manual_seed(int(concept.seed) * 1_000_003 + int(concept.concept_id))


def subsample(frame: pd.DataFrame, n: int, generator: torch.Generator) -> pd.DataFrame:
    """At most n rows of `frame`, drawn at random, in their original order."""
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    pick = torch.randperm(len(frame), generator=generator)[:n].sort().values.numpy()
    return frame.iloc[pick].reset_index(drop=True)


def tokenize(handle: ModelHandle, instructions, responses, max_response_tokens: int) -> TokenPairs:
    """(steering-prompt ids, response ids + EOS) of each example, the response cut to max_response_tokens."""
    return tokenize_pairs(handle.tokenizer, handle.cfg, list(instructions), list(responses), max_response_tokens)


def batch_of(handle: ModelHandle, pairs: TokenPairs, rows: list[int]) -> LMBatch:
    """One left-padded batch holding the examples `rows`, in that order."""
    return lm_batches(pairs, len(rows), handle.tokenizer.pad_token_id, order=rows)[0]


def random_vector(d: int, generator: torch.Generator, device) -> torch.Tensor:
    """A trainable vector initialised like a torch Linear row: uniform in +-1/sqrt(d) (as AxBench's interventions)."""
    bound = 1.0 / math.sqrt(d)
    vector = (torch.rand(d, generator=generator) * 2 - 1) * bound
    return vector.to(device).requires_grad_(True)


class _StandIn(nn.Module):
    """Takes the place of a skipped decoder block: passes its input on, or returns the given states."""

    def __init__(self, hidden: torch.Tensor | None = None):
        super().__init__()
        self.hidden = hidden

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states if self.hidden is None else self.hidden


class PrefixCache:
    """The residual stream after block L of every example, computed once (it does not depend on the
    trained vector). `run_from(batch)` makes the model's next forward start after block L from them."""

    def __init__(self, handle: ModelHandle, pairs: TokenPairs, batch_size: int):
        self.handle, self.pairs = handle, pairs
        self.states: list[torch.Tensor] = []
        for start in range(0, len(pairs), batch_size):
            self.states += self._compute(list(range(start, min(start + batch_size, len(pairs)))))

    @torch.no_grad()
    def _compute(self, rows: list[int]) -> list[torch.Tensor]:
        model, batch = self.handle.model, batch_of(self.handle, self.pairs, rows)
        device = model.device
        hidden = residual_after_block(model, self.handle.layer, batch.ids.to(device), batch.mask.to(device),
                                      batch.positions.to(device))
        return [hidden[r, batch.mask[r].bool().to(device)] for r in range(len(rows))]

    def batch(self, rows: list[int]) -> LMBatch:
        return batch_of(self.handle, self.pairs, rows)

    @contextmanager
    def run_from(self, batch: LMBatch) -> Iterator[None]:
        """Blocks 0..L stand aside; block L's stand-in returns the cached states of `batch`'s rows (left-padded
        with zeros, which the attention mask hides). Enter hooks on block L inside this context."""
        first = self.states[batch.rows[0]]
        hidden = torch.zeros((*batch.ids.shape, first.shape[-1]), dtype=first.dtype, device=first.device)
        for r, row in enumerate(batch.rows):
            n = len(self.states[row])
            hidden[r, hidden.shape[1] - n :] = self.states[row]
        blocks = decoder_blocks(self.handle.model)
        layer = self.handle.layer
        skipped = [blocks[i] for i in range(layer + 1)]
        for i in range(layer + 1):
            blocks[i] = _StandIn(hidden if i == layer else None)
        try:
            yield
        finally:
            for i, block in enumerate(skipped):
                blocks[i] = block


def fit(params: list[torch.Tensor], n_examples: int, cfg: dict, generator: torch.Generator,
        loss_fn: Callable[[list[int], float], torch.Tensor], before_step: Callable[[], None] | None = None,
        after_step: Callable[[], None] | None = None, clip_norm: float | None = None) -> list[float]:
    """AdamW over cfg `epochs` shuffled passes of cfg `batch_size` examples, the learning rate decaying
    linearly to 0 (AxBench's schedule). loss_fn(rows, progress) gets the example rows of a step and the
    fraction of training done before it; before_step may edit the gradients, after_step the parameters.
    Returns the loss of every step."""
    batch_size, epochs = int(cfg["batch_size"]), int(cfg["epochs"])
    total = epochs * math.ceil(n_examples / batch_size)
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / max(total, 1))
    losses: list[float] = []
    for _ in range(epochs):
        for rows in torch.randperm(n_examples, generator=generator).split(batch_size):
            loss = loss_fn(rows.tolist(), len(losses) / total)
            optimizer.zero_grad()
            loss.backward()
            if before_step is not None:
                before_step()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            optimizer.step()
            schedule.step()
            if after_step is not None:
                after_step()
            losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def response_activations(handle: ModelHandle, examples: pd.DataFrame, max_length: int,
                         batch_size: int = 16, context: str | None = None) -> tuple[torch.Tensor, pd.DataFrame]:
    """Scored-token activations after the handle's layer for every example (the cache's format), in
    `context` (default: the model's score_context): acts [n_tokens, d] back to back, and the examples
    with n_tokens."""
    tokenizer, model = handle.tokenizer, handle.model
    items = [scored_tokens(tokenizer, handle.cfg, instruction, response, max_length, context)
             for instruction, response in zip(examples["input"], examples["output"])]
    pieces: list[torch.Tensor] = [torch.empty(0)] * len(items)
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(items[i].input_ids) for i in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):  # right padding keeps positions 0..n-1
            ids[r, : len(items[i].input_ids)] = torch.tensor(items[i].input_ids)
            mask[r, : len(items[i].input_ids)] = 1
        hidden = residual_after_block(model, handle.layer, ids.to(model.device), mask.to(model.device)).float().cpu()
        for r, i in enumerate(rows):
            pieces[i] = hidden[r, items[i].score_start : len(items[i].input_ids)]
    lengths = [len(p) for p in pieces]
    return torch.cat(pieces), examples.assign(n_tokens=lengths)
