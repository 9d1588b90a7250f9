"""LoReFT (Wu et al. 2024, "ReFT: Representation Finetuning for Language Models"), as AxBench's
steering baseline: a low-rank edit of the residual stream, trained per concept with the LM loss.

After decoder block L every position's hidden state becomes

    h' = h + R^T (W h + b - R h)

with R [r, d] (orthonormal rows), W [r, d], b [r]: inside the subspace spanned by R's rows, the
representation R h is replaced by the learned W h + b. Positions: every position, prompt and
response in training, prompt and generated tokens in steering (the DESIGN's steering convention;
AxBench's LoReFT intervened on the first and last 5 prompt tokens ("f5+l5") at four layers).
R is kept orthonormal by a QR decomposition of a free matrix in every forward pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from interpflow.methods._finetune import block_hidden, concept_rows, concept_seed, finetune, replace_hidden
from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData
from interpflow.models.architectures import decoder_blocks


def loreft_edit(h: torch.Tensor, R: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h + R^T (W h + b - R h) per batch row: h [B, T, d], R and W [B, r, d], b [B, r]."""
    x = h.float()
    delta = torch.einsum("btd,brd->btr", x, W - R) + b[:, None, :]
    return (x + torch.einsum("btr,brd->btd", delta, R)).to(h.dtype)


@contextmanager
def loreft_hook(model: nn.Module, layer: int, parameters: Callable[[int], tuple]) -> Iterator[None]:
    """Apply the edit after block `layer`, at every position of every forward call.

    parameters(batch_size) -> (R, W, b) for each batch row: [B, r, d], [B, r, d], [B, r].
    """

    def hook(_module, _inputs, output):
        hidden = block_hidden(output)
        return replace_hidden(output, loreft_edit(hidden, *parameters(hidden.shape[0])))

    handle = decoder_blocks(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class LoReFTParams(nn.Module):
    """The trainable intervention of one concept; R = orthonormalised rows of a free matrix."""

    def __init__(self, d_model: int, rank: int, generator: torch.Generator):
        super().__init__()
        free = torch.empty(rank, d_model)
        nn.init.orthogonal_(free, generator=generator)
        self.free = nn.Parameter(free)
        # as nn.Linear(d_model, rank) initialises itself (pyreft's learned source)
        bound = 1 / d_model**0.5
        self.W = nn.Parameter(torch.empty(rank, d_model).uniform_(-bound, bound, generator=generator))
        self.b = nn.Parameter(torch.empty(rank).uniform_(-bound, bound, generator=generator))

    def R(self) -> torch.Tensor:
        q, _ = torch.linalg.qr(self.free.T)  # [d, r], orthonormal columns
        return q.T


class LoReFT(PerConceptMethod):
    name = "loreft"
    needs = "model"
    detects = False
    steers = True
    uses_factor = False

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        handle = concept.model
        model = handle.model
        d_model = model.config.hidden_size
        generator = torch.Generator().manual_seed(concept_seed(concept))
        params = LoReFTParams(d_model, int(self.cfg["rank"]), generator).to(model.device)

        def current(n: int):  # R is recomputed from the free matrix in every forward pass
            return params.R().expand(n, -1, -1), params.W.expand(n, -1, -1), params.b.expand(n, -1)

        with loreft_hook(model, handle.layer, current):
            finetune(model, list(params.parameters()), concept, self.cfg)
        with torch.no_grad():
            return {"R": params.R().detach().cpu(), "W": params.W.detach().cpu(), "b": params.b.detach().cpu()}

    def steering(self, tensors, model, layer, rows):
        idx = concept_rows(rows, "cpu")
        R, W, b = (tensors[k].float()[idx].to(model.device) for k in ("R", "W", "b"))

        def per_row(n: int):
            if n != len(idx):
                raise ValueError(f"LoReFT steering got a batch of {n} rows for a plan of {len(idx)}")
            return R, W, b

        return loreft_hook(model, layer, per_row)
