"""HyperSteer (Sun et al. 2025, "HyperSteer: Activation Steering at Scale with Hypernetworks").

A hypernetwork maps a concept's text and the steered prompt's residual states to a steering
vector, added after block L at every position; it is trained end to end with the language-model
loss of the frozen model on the concepts' positive responses. The paper's best variant is a
transformer (the base LM's first layers) that self-attends over the concept text and
cross-attends to the base LM's layer-L states of the prompt. Scaled down here: the concept's
tokens are embedded by the frozen model's own token embeddings, and one pre-norm transformer
decoder block (self-attention over the concept tokens, cross-attention to the prompt's layer-L
states without its first token, the attention sink) is mean-pooled into the vector.

The vector is produced directly: no factor (one generation per prompt). Its output layer starts
at zero (training starts from "no steering") and its size is in units of the prompt states' RMS,
so one learning rate suits models whose residual norms differ by orders of magnitude.

One hypernetwork is trained across the shard's concepts (not per concept, so there are no
per-concept checkpoints); the artifact is its parameters, `hyper.*`.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import pandas as pd
import torch
from torch import nn

from interpflow.methods.base import Method
from interpflow.methods.data import ModelHandle, TrainingData
from interpflow.models.architectures import decoder_blocks
from interpflow.models.training import lm_batches, response_nll, tokenize_pairs
from interpflow.ranges import COUNT, NON_NEGATIVE, RATE, SEED

PREFIX = "hyper."


class HyperNetwork(nn.Module):
    """(concept token embeddings, prompt states after block L) -> steering vector [d_model]."""

    def __init__(self, d_model: int, width: int, heads: int):
        super().__init__()
        self.concept_in = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, width))
        self.context_in = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, width))
        self.block = nn.TransformerDecoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0,
                                                activation="gelu", batch_first=True, norm_first=True)
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, d_model)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, concept: torch.Tensor, concept_mask: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> torch.Tensor:
        """concept [B, K, d] with concept_mask [B, K]; context [B, T, d] with context_mask [B, T] (True = real)."""
        context = context.float()
        x = self.block(self.concept_in(concept.float()), self.context_in(context),
                       tgt_key_padding_mask=~concept_mask, memory_key_padding_mask=~context_mask)
        keep = concept_mask[..., None].float()
        pooled = (x * keep).sum(dim=1) / keep.sum(dim=1)
        # RMS of the prompt's states: the unit of the output
        per_token = context.pow(2).mean(dim=-1).sqrt()
        rms = (per_token * context_mask).sum(dim=1) / context_mask.sum(dim=1)
        return self.out(self.out_norm(pooled)) * rms[:, None]


def context_mask(mask: torch.Tensor) -> torch.Tensor:
    """The positions the hypernetwork reads: the real tokens minus each row's first (the attention sink)."""
    mask = mask.bool().clone()
    first = mask.float().argmax(dim=1)
    has_more = mask.sum(dim=1) > 1
    mask[torch.arange(len(mask))[has_more], first[has_more]] = False
    return mask


def concept_tokens(tokenizer, concepts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids of each concept text and their mask: two [B, K]."""
    ids = [tokenizer(c, add_special_tokens=False).input_ids[:max_tokens] or [tokenizer.eos_token_id] for c in concepts]
    width = max(len(i) for i in ids)
    out = torch.zeros((len(ids), width), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.bool)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = True
    return out, mask


@contextmanager
def hyper_steering(model, layer: int, net: HyperNetwork, concept: torch.Tensor, concept_mask: torch.Tensor,
                   read_mask: torch.Tensor | None = None) -> Iterator[dict]:
    """Add net's vector for each row after block `layer`, at every position of every call in the context.

    The vectors are computed on the first forward call (the prompt: generation's prefill) from that
    call's states after block `layer` at `read_mask` positions (default: the call's attention mask
    less each row's first token), and reused by every later call (cached decoding). Yields the
    state dict, whose "vector" [B, d_model] is set once computed.
    """
    state: dict = {"read": read_mask}

    def capture_mask(_module, _args, kwargs):
        if state["read"] is None:
            ids = kwargs.get("input_ids")
            mask = kwargs.get("attention_mask")
            state["read"] = context_mask(mask if mask is not None else torch.ones_like(ids))

    def add(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if "vector" not in state:
            read = state["read"].to(hidden.device)
            state["vector"] = net(concept.to(hidden.device), concept_mask.to(hidden.device), hidden.detach(), read)
        steered = hidden + state["vector"][:, None, :].to(hidden.dtype)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    handles = [model.register_forward_pre_hook(capture_mask, with_kwargs=True),
               decoder_blocks(model)[layer].register_forward_hook(add)]
    try:
        yield state
    finally:
        for handle in handles:
            handle.remove()


@lru_cache(maxsize=4)
def _tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path)


class HyperSteer(Method):
    name = "hypersteer"
    needs = "model"
    detects = False
    steers = True
    uses_factor = False
    settings = {"width": COUNT, "heads": COUNT, "steps": COUNT, "batch_size": COUNT, "lr": RATE, "weight_decay": NON_NEGATIVE,
                "max_response_tokens": COUNT, "max_concept_tokens": COUNT, "seed": SEED}

    def build(self, d_model: int) -> HyperNetwork:
        return HyperNetwork(d_model, int(self.cfg["width"]), int(self.cfg["heads"]))

    def embed_concepts(self, model, tokenizer, concepts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = concept_tokens(tokenizer, concepts, int(self.cfg["max_concept_tokens"]))
        with torch.no_grad():
            return model.get_input_embeddings()(ids.to(model.device)).float(), mask

    # --- training ---------------------------------------------------------------------------
    def train(self, data: TrainingData) -> dict[str, torch.Tensor]:
        handle: ModelHandle = data.model
        model, tokenizer = handle.model, handle.tokenizer
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
            torch.manual_seed(int(self.cfg["seed"]))
            net = self.build(model.config.hidden_size).to(model.device)
        examples = self.training_examples(data)
        pairs = tokenize_pairs(tokenizer, handle.cfg, examples["input"].tolist(), examples["output"].tolist(),
                               int(self.cfg["max_response_tokens"]))
        concept, concept_mask = self.embed_concepts(model, tokenizer, examples["concept"].tolist())
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])
        steps = int(self.cfg["steps"])
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / max(1, steps))
        generator = torch.Generator().manual_seed(int(self.cfg["seed"]))
        order: list[int] = []
        for _ in range(steps):
            if len(order) < self.cfg["batch_size"]:
                order += torch.randperm(len(pairs), generator=generator).tolist()
            rows, order = order[: self.cfg["batch_size"]], order[self.cfg["batch_size"] :]
            batch = lm_batches(pairs, len(rows), tokenizer.pad_token_id, rows)[0]
            read = context_mask(batch.mask.bool() & ~batch.response)
            with hyper_steering(model, handle.layer, net, concept[rows], concept_mask[rows], read):
                loss = response_nll(model, batch)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            schedule.step()
        return {PREFIX + key: value.detach().cpu() for key, value in net.state_dict().items()}

    @staticmethod
    def training_examples(data: TrainingData) -> pd.DataFrame:
        """The positive examples of the shard's concepts, with each one's concept text."""
        frame = data.examples[(data.examples["label"] == 1) & data.examples["concept_id"].isin(data.concept_ids)]
        return frame.merge(data.concepts[["concept_id", "concept"]], on="concept_id").reset_index(drop=True)

    # --- steering ---------------------------------------------------------------------------
    def network(self, tensors: dict[str, torch.Tensor]) -> HyperNetwork:
        weights = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        net = self.build(weights["out.weight"].shape[0])
        net.load_state_dict(weights)
        return net.eval().requires_grad_(False)

    def steering(self, tensors, model, layer, rows):
        # The concept text is tokenised with the model's own tokenizer (steering gets no ModelHandle).
        tokenizer = _tokenizer(model.name_or_path)
        concept, concept_mask = self.embed_concepts(model, tokenizer, rows["concept"].tolist())
        net = self.network(tensors).to(model.device)
        return hyper_steering(model, layer, net, concept, concept_mask)
