"""Batched generation with steering (left padding, KV cache) and perplexity of generations."""

from __future__ import annotations

import math

import torch

from interpflow.models.hooks import add_to_residual


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


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    layer: int,
    vectors: torch.Tensor | None,
    max_new_tokens: int,
    batch_size: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[list[int]]:
    """Continue each prompt; row i is steered by adding vectors[i] after block `layer` at every position.

    Returns the generated token ids of each row (up to its end-of-sequence token). Rows are
    batched by prompt length. Greedy when temperature is 0; otherwise sampled with a fixed seed
    per batch, so a re-run reproduces the same texts.
    """
    device = model.device
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    generated: list[list[int]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids, mask = _left_pad([prompts[i] for i in rows], tokenizer.pad_token_id)
        ids, mask = ids.to(device), mask.to(device)
        sampling = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature}
        torch.manual_seed(seed + start)
        kwargs = dict(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            top_p=None,
            top_k=None,
            **sampling,
        )
        if vectors is None:
            out = model.generate(**kwargs)
        else:
            with add_to_residual(model, layer, vectors[rows].to(device)):
                out = model.generate(**kwargs)
        for row, seq in zip(rows, out[:, ids.shape[1] :]):
            generated[row] = _trim(seq, stop_ids)
    return generated


def decode(tokenizer, generated: list[list[int]]) -> list[str]:
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated]


@torch.no_grad()
def perplexity(model, prompts: list[list[int]], generations: list[list[int]], batch_size: int, pad_id: int) -> list[float]:
    """exp(mean NLL) of each generation's tokens given its prompt, under the (unsteered) model.

    Sequences are left-padded so every generation ends at the right edge; only the positions that
    predict generated tokens go through the LM head.
    """
    results = [math.nan] * len(prompts)
    items = sorted((i for i in range(len(prompts)) if generations[i]), key=lambda i: len(prompts[i]) + len(generations[i]))
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
