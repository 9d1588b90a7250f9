"""Batched generation with steering (left padding, KV cache) and perplexity of generations."""

from __future__ import annotations

import math

import torch
from torch.nn.utils.rnn import pad_sequence

from interpflow.models.hooks import add_to_residual


def _left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return ids, mask


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
) -> list[str]:
    """Continue each prompt; row i is steered by adding vectors[i] after block `layer` at every position.

    Rows are batched by prompt length. Greedy when temperature is 0; otherwise sampled with a
    fixed seed per batch, so a re-run reproduces the same texts.
    """
    device = model.device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
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
            texts[row] = tokenizer.decode(seq, skip_special_tokens=True).strip()
    return texts


@torch.no_grad()
def perplexity(model, tokenizer, prompts: list[list[int]], generations: list[str], batch_size: int) -> list[float]:
    """exp(mean NLL) of each generation's tokens given its prompt, under the (unsteered) model."""
    results = [math.nan] * len(prompts)
    items = []
    for i, (prompt, text) in enumerate(zip(prompts, generations)):
        gen_ids = tokenizer(text, add_special_tokens=False).input_ids
        if gen_ids:
            items.append((i, prompt, gen_ids))
    items.sort(key=lambda item: len(item[1]) + len(item[2]))
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        seqs = [torch.tensor(p + g) for _, p, g in batch]
        ids = pad_sequence(seqs, batch_first=True, padding_value=tokenizer.pad_token_id).to(model.device)
        mask = pad_sequence([torch.ones(len(s), dtype=torch.long) for s in seqs], batch_first=True).to(model.device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        token_lp = logprobs.gather(-1, ids[:, 1:, None])[..., 0]
        for row, (i, prompt, gen) in enumerate(batch):
            first, last = len(prompt) - 1, len(prompt) - 1 + len(gen)
            results[i] = math.exp(-token_lp[row, first:last].mean().item())
    return results
