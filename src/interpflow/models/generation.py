"""Batched generation with steering (left padding, KV cache) and perplexity of generations."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, ContextManager

import torch

from interpflow.models.hooks import add_to_residual
from interpflow.progress import Progress

# intervene(rows) -> the context a batch of those rows (indices into the prompts) is generated in
Intervene = Callable[[list[int]], ContextManager]


def _left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return ids, mask


def _trim(tokens: torch.Tensor, stop_ids: set[int]) -> list[int]:
    """Generated ids up to (not including) the first end-of-sequence or pad token."""
    out = []
    for token in tokens.tolist():
        if token in stop_ids:
            break
        out.append(token)
    return out


def adding(model, layer: int, vectors: torch.Tensor) -> Intervene:
    """An `intervene` for generate(): row i gets vectors[i] added after block `layer`."""
    return lambda rows: add_to_residual(model, layer, vectors[rows].to(model.device))


def _batches(order: list[int], batch_size: int, groups: list | None) -> list[list[int]]:
    """Consecutive runs of `order`, at most batch_size long, never mixing two groups."""
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (groups is None or groups[batches[-1][0]] == groups[i]):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    intervene: Intervene | None,
    max_new_tokens: int,
    batch_size: int,
    temperature: float = 0.0,
    seed: int = 0,
    groups: list | None = None,
) -> list[list[int]]:
    """Continue each prompt; each batch of rows is generated inside intervene(rows) (None: unsteered).

    Returns the generated token ids of each row (up to its end-of-sequence token). Rows are
    batched by prompt length and never mix two values of `groups`. Greedy when temperature is 0;
    otherwise sampled with a fixed seed per batch, so a re-run reproduces the same texts.
    """
    device = model.device
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    key = (lambda i: (str(groups[i]), len(prompts[i]))) if groups is not None else (lambda i: len(prompts[i]))
    generated: list[list[int]] = [[] for _ in prompts]
    progress = Progress("generation", len(prompts), "prompts")
    for number, rows in enumerate(_batches(sorted(range(len(prompts)), key=key), batch_size, groups)):
        ids, mask = _left_pad([prompts[i] for i in rows], tokenizer.pad_token_id)
        ids, mask = ids.to(device), mask.to(device)
        sampling = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature}
        torch.manual_seed(seed + number)
        kwargs = dict(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            top_p=None,
            top_k=None,
            **sampling,
        )
        with intervene(rows) if intervene is not None else nullcontext():
            out = model.generate(**kwargs)
        for row, seq in zip(rows, out[:, ids.shape[1] :]):
            generated[row] = _trim(seq, stop_ids)
        progress.update(len(rows))
    return generated


def decode(tokenizer, generated: list[list[int]]) -> list[str]:
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated]


# fp32 logits one perplexity pass may hold (log-softmax makes a second copy): with steering.batch_size
# 384, a batch's logits would take 2.5 GB on SmolLM2's vocabulary and 13 GB on Gemma 3's
LOGITS_BUDGET_BYTES = 256 << 20


@torch.no_grad()
def perplexity(model, prompts: list[list[int]], generations: list[list[int]], batch_size: int, pad_id: int) -> list[float]:
    """exp(mean NLL) of each generation's tokens given its prompt, under the (unsteered) model.

    Sequences are left-padded so every generation ends at the right edge; only the positions that
    predict generated tokens go through the LM head. Batches hold at most `batch_size` rows, and
    fewer where their logits would pass LOGITS_BUDGET_BYTES.
    """
    results = [math.nan] * len(prompts)
    items = sorted((i for i in range(len(prompts)) if generations[i]), key=lambda i: len(prompts[i]) + len(generations[i]))
    logits_per_row = 4 * model.get_output_embeddings().weight.shape[0] * (max(map(len, generations), default=0) + 1)
    batch_size = max(1, min(batch_size, LOGITS_BUDGET_BYTES // logits_per_row))
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        ids, mask = _left_pad([prompts[i] + generations[i] for i in batch], pad_id)
        ids, mask = ids.to(model.device), mask.to(model.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        n_keep = max(len(generations[i]) for i in batch) + 1
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                       logits_to_keep=n_keep).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = ids[:, -(n_keep - 1) :]
        token_lp = logprobs.gather(-1, targets[..., None])[..., 0]
        for row, i in enumerate(batch):
            results[i] = math.exp(-token_lp[row, -len(generations[i]) :].mean().item())
    return results
