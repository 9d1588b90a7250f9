"""The training loop shared by the methods that change the model per concept (LoReFT, LoRA, SFT).

Each trains on the concept's positive (instruction, response) pairs with the language-model loss
on the response tokens only (the prompt is the steering prompt, so training and steering see the
same format). Config keys read here: lr, weight_decay, steps, batch_size, max_response_tokens,
and optionally grad_clip.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from interpflow.methods.data import ConceptData
from interpflow.models.training import LMBatch, lm_batches, response_nll, tokenize_pairs
from interpflow.ranges import COUNT, NON_NEGATIVE, RATE

# the settings `finetune` reads
FINETUNE_SETTINGS = {"lr": RATE, "weight_decay": NON_NEGATIVE, "steps": COUNT, "batch_size": COUNT, "max_response_tokens": COUNT}


def concept_seed(concept: ConceptData) -> int:
    """One seed per (run seed, concept): a concept trains the same whatever else is in the shard."""
    return int(concept.seed) * 1_000_003 + int(concept.concept_id)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global generators (adapter initialisation, dropout) and restore them on exit."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def positive_pairs(concept: ConceptData, cfg: dict) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids) of the concept's positives, responses cut to max_response_tokens."""
    handle = concept.model
    frame = concept.positives
    return tokenize_pairs(handle.tokenizer, handle.cfg, frame["input"].tolist(), frame["output"].tolist(),
                          cfg["max_response_tokens"])


def batch_stream(pairs, batch_size: int, pad_id: int, generator: torch.Generator):
    """Batches forever: each epoch visits every example once, in a fresh seeded order."""
    while True:
        order = torch.randperm(len(pairs), generator=generator).tolist()
        yield from lm_batches(pairs, batch_size, pad_id, order)


def finetune(model, params: list[torch.Tensor], concept: ConceptData, cfg: dict,
             before_batch: Callable[[LMBatch], None] | None = None) -> list[float]:
    """Minimise the response NLL of the concept's positives over `params` (AdamW, linear decay to 0).

    `model` must already route its forward pass through `params` (hooks, adapters, or its own
    weights); `before_batch` sees each batch before its forward pass. Returns the loss of every step.
    """
    steps = int(cfg["steps"])
    if steps == 0:
        return []
    tokenizer = concept.model.tokenizer
    generator = torch.Generator().manual_seed(concept_seed(concept))
    batches = batch_stream(positive_pairs(concept, cfg), int(cfg["batch_size"]), tokenizer.pad_token_id, generator)
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    losses = []
    for _ in range(steps):
        batch: LMBatch = next(batches)
        if before_batch is not None:
            before_batch(batch)
        loss = response_nll(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def replace_hidden(output, hidden: torch.Tensor):
    """A decoder block's output with its hidden states replaced (blocks return a tensor or a tuple)."""
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    return hidden


def block_hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def concept_rows(rows, device) -> torch.Tensor:
    """The artifact row of each batch row, as an index tensor."""
    return torch.tensor(rows["concept_row"].to_numpy(), dtype=torch.long, device=device)
