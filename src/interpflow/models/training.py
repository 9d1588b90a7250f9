"""Language-model losses for methods that train through the model: batches of (prompt, response)
pairs and the log-likelihood of each response token, computed only where the response is."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interpflow.models.formatting import prompt_ids


@dataclass
class LMBatch:
    ids: torch.Tensor  # [B, T] prompt + response, left-padded so every response ends at the right edge
    mask: torch.Tensor  # [B, T] attention mask
    positions: torch.Tensor  # [B, T] position ids (padding does not shift them)
    response: torch.Tensor  # [B, T] bool: the response's positions
    rows: list[int]  # which inputs these are


def tokenize_pairs(tokenizer, model_cfg: dict, instructions: list[str], responses: list[str],
                   max_response_tokens: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids + end of sequence) for each example; the prompt is the steering prompt."""
    out = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for instruction, response in zip(instructions, responses):
        body = tokenizer(response, add_special_tokens=False).input_ids[:max_response_tokens]
        out.append((prompt_ids(tokenizer, model_cfg, instruction), body + eos))
    return out


def lm_batches(pairs: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, order: list[int] | None = None) -> list[LMBatch]:
    """Batches of the tokenized pairs (in `order`, default as given)."""
    order = list(range(len(pairs))) if order is None else order
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        seqs = [pairs[i][0] + pairs[i][1] for i in rows]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        response = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, (i, seq) in enumerate(zip(rows, seqs)):
            ids[r, width - len(seq) :] = torch.tensor(seq)
            mask[r, width - len(seq) :] = 1
            response[r, width - len(pairs[i][1]) :] = True
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        batches.append(LMBatch(ids, mask, positions, response, rows))
    return batches


def response_logprobs(model, batch: LMBatch) -> torch.Tensor:
    """Log-probability of each response token given everything before it: [B, T] (0 off the response).

    Only the positions that predict response tokens go through the LM head.
    """
    device = model.device
    n_response = int(batch.response.sum(-1).max())
    logits = model(input_ids=batch.ids.to(device), attention_mask=batch.mask.to(device),
                   position_ids=batch.positions.to(device), use_cache=False, logits_to_keep=n_response + 1).logits
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = batch.ids[:, -n_response:].to(device)
    token_lp = logprobs.gather(-1, targets[..., None])[..., 0]
    out = torch.zeros(batch.ids.shape, dtype=token_lp.dtype, device=device)
    out[:, -n_response:] = token_lp
    return out * batch.response.to(device)


def response_nll(model, batch: LMBatch) -> torch.Tensor:
    """Mean negative log-likelihood over all response tokens of the batch."""
    logprobs = response_logprobs(model, batch)
    return -logprobs.sum() / batch.response.sum().clamp(min=1).to(logprobs.device)
