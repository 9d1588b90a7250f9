"""Residual streams of many texts that start with the same tokens, the common start computed once.

Every example of an activation cache starts with the same chat-template opening (SmolLM2's system
prompt and user tag: 24 of an average 78 tokens in the demo data). A causal model computes the same
keys and values there for every example, so blocks 0..L run over that prefix once; each batch then
runs only its own tokens, attending to the prefix's keys and values. The numbers are those of a
full pass up to floating-point order (tests/integration/test_shared_prefix.py).
"""

from __future__ import annotations

import torch

from interpflow.models.hooks import residual_after_block
from interpflow.models.shared_decoding import KVCache, attention_mask, grouped_sdpa, supports

# A shorter common start saves less than the extra attention inputs cost.
MIN_PREFIX = 8


def common_prefix_length(sequences: list[list[int]], limit: int) -> int:
    """Length of the longest start all sequences share, at most `limit`."""
    first, length = sequences[0], 0
    while length < limit and all(seq[length] == first[length] for seq in sequences):
        length += 1
    return length


class SharedPrefix:
    """Keys and values of blocks 0..`layer` over a prefix, for passes over what follows it."""

    def __init__(self, model, layer: int, prefix_ids: list[int]):
        self.model, self.layer, self.length = model, layer, len(prefix_ids)
        self.cache = KVCache(model, 1, self.length, last_layer=layer)
        ids = torch.tensor([prefix_ids], device=model.device)
        mask = attention_mask(torch.ones_like(ids, dtype=torch.bool), 0, self.length, model.dtype)
        with torch.no_grad(), grouped_sdpa(model):
            residual_after_block(model, layer, ids, mask, torch.arange(self.length, device=model.device)[None],
                                 cache=self.cache)

    @classmethod
    def for_texts(cls, model, layer: int, sequences: list[list[int]], keep: int) -> "SharedPrefix | None":
        """The prefix all `sequences` share, leaving each its tokens from position `keep` on
        (`keep` <= every sequence's length - 1), or None where sharing would not pay or the model
        cannot take it (see shared_decoding.supports)."""
        if not sequences or not supports(model, max(map(len, sequences))):
            return None
        length = common_prefix_length(sequences, keep)
        return cls(model, layer, sequences[0][:length]) if length >= MIN_PREFIX else None

    @torch.no_grad()
    def residual(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Residual after block `layer` at the positions that follow the prefix: [batch, seq, d_model]
        for right-padded `ids` [batch, seq] (the tokens after the prefix) and their `mask`."""
        batch, n_new = ids.shape
        cache = KVCache(self.model, batch, self.length + n_new, last_layer=self.layer)
        for i in range(self.layer + 1):
            cache.fill(i, 0, *self.cache.layer(i))
        valid = torch.cat([torch.ones(batch, self.length, dtype=torch.bool, device=ids.device), mask.bool()], dim=1)
        positions = self.length + torch.arange(n_new, device=ids.device)[None].expand(batch, -1)
        mask = attention_mask(valid, self.length, n_new, self.model.dtype)
        with grouped_sdpa(self.model):
            return residual_after_block(self.model, self.layer, ids, mask, positions, cache=cache)
