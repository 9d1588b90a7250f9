"""LoReFT (Wu et al. 2024, "ReFT: Representation Finetuning for Language Models"), as AxBench's
steering baseline: a low-rank edit of the residual stream, trained per concept with the LM loss.

After each edited decoder block, the hidden state at each edited position becomes

    h' = h + R^T (W h + b - R h)

with R [r, d] (orthonormal rows), W [r, d], b [r]: inside the subspace spanned by R's rows, the
representation R h is replaced by the learned W h + b. As in AxBench, each of several blocks
(`layer_fractions` x the experiment's layer: AxBench's 5, 10, 15, 20 at layer 20) has its own edit,
applied at the first and last 5 prompt tokens after the first (`positions: f5+l5`; a prompt of n
such tokens gets min(5, n // 2) at each end): in training and when a steered answer is generated,
the prompt is edited and the answer is not (it sees the edit through attention).
`positions: all` edits every position, prompt and answer, at every step of generation.
R is kept orthonormal by a QR decomposition of a free matrix in every forward pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from interpflow.errors import ConfigError
from interpflow.methods._finetune import FINETUNE_SETTINGS, block_hidden, concept_rows, concept_seed, finetune, replace_hidden
from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData
from interpflow.methods.lora import adapted_layers
from interpflow.models.architectures import decoder_blocks
from interpflow.models.training import LMBatch
from interpflow.ranges import COUNT, FRACTION, choice, list_of

POSITIONS = ("f5+l5", "all")
EDGE = 5  # tokens edited at each end of the prompt (f5+l5)


def loreft_edit(h: torch.Tensor, R: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h + R^T (W h + b - R h) per batch row: h [B, T, d], R and W [B, r, d], b [B, r]."""
    x = h.float()
    delta = torch.einsum("btd,brd->btr", x, W - R) + b[:, None, :]
    return (x + torch.einsum("btr,brd->btd", delta, R)).to(h.dtype)


def edge_positions(prompt: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: of each row's prompt tokens (`prompt` [B, T] bool) after its first, the first and the last
    min(EDGE, n // 2) (n: how many there are), AxBench's "f5+l5"."""
    after_first = prompt & (prompt.long().cumsum(-1) > 1)
    rank = after_first.long().cumsum(-1)  # 1..n along each row's edited candidates
    n = after_first.sum(-1, keepdim=True)
    edge = torch.clamp(n // 2, max=EDGE)
    return after_first & ((rank <= edge) | (rank > n - edge))


class Positions:
    """Where the edit applies, per batch row. `set_prompt` fixes the edited positions of the next forward
    passes (a training batch's prompt; with `from_generation`, a generation's prompt, read from its first
    pass); longer passes (no cache) keep those columns; one-token decode steps are not edited."""

    def __init__(self, mode: str, from_generation: bool):
        if mode not in POSITIONS:
            raise ConfigError(f"loreft positions {mode!r} is not one of {POSITIONS}")
        self.mode, self.from_generation, self.mask = mode, from_generation, None

    def set_prompt(self, prompt: torch.Tensor | None) -> None:
        self.mask = edge_positions(prompt) if prompt is not None and self.mode == "f5+l5" else None

    def fix(self, prompt: torch.Tensor) -> None:
        """Edit `prompt`'s positions ([B, T] bool) in every following pass, whatever passes come."""
        self.from_generation = False
        self.set_prompt(prompt)

    def for_width(self, width: int) -> torch.Tensor | None:
        """[B, width] bool, or None for every position."""
        if self.mode == "all":
            return None
        if self.mask is None or width == 1:
            return torch.zeros(1, width, dtype=torch.bool)
        mask = self.mask[:, :width]
        return torch.nn.functional.pad(mask, (0, width - mask.shape[1]))


@contextmanager
def loreft_hook(model: nn.Module, layers: list[int], parameters: Callable[[int, int], tuple],
                positions: Positions) -> Iterator[None]:
    """Apply each layer's edit after its block at `positions`.

    parameters(layer number in `layers`, batch_size) -> (R, W, b) for each batch row: [B, r, d], [B, r, d], [B, r].
    A generation's first pass (its attention mask, left padding) tells `positions` where the prompt is.
    Yields `positions`, so a caller scoring given prompt + response texts can `fix` the prompt's positions.
    """

    def capture_prompt(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not positions.from_generation or ids is None or ids.shape[1] == 1:
            return
        mask, position_ids = kwargs.get("attention_mask"), kwargs.get("position_ids")
        if mask is not None:
            positions.set_prompt(mask[:, -ids.shape[1]:].bool().cpu())
        elif position_ids is not None:  # generate() in transformers 5 passes positions, not the mask:
            # a left-padded row's real tokens start at its position 0 (padding is given position 1)
            positions.set_prompt(((position_ids == 0).long().cumsum(-1) > 0).expand_as(ids).cpu())
        else:
            raise ValueError("LoReFT steering needs the prompt's attention mask or position ids to find its positions")

    def hook_for(number: int):
        def hook(_module, _inputs, output):
            hidden = block_hidden(output)
            edited = loreft_edit(hidden, *parameters(number, hidden.shape[0]))
            where = positions.for_width(hidden.shape[1])
            if where is not None:
                edited = torch.where(where.to(hidden.device)[..., None], edited, hidden)
            return replace_hidden(output, edited)
        return hook

    handles = [model.register_forward_pre_hook(capture_prompt, with_kwargs=True)]
    handles += [decoder_blocks(model)[layer].register_forward_hook(hook_for(n)) for n, layer in enumerate(layers)]
    try:
        yield positions
    finally:
        for handle in handles:
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
    settings = {"rank": COUNT, "layer_fractions": list_of(FRACTION), "positions": choice(*POSITIONS),
                **FINETUNE_SETTINGS}

    def layers(self, layer: int) -> list[int]:
        return adapted_layers(self.cfg["layer_fractions"], layer)

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        handle = concept.model
        model = handle.model
        d_model = model.config.hidden_size
        generator = torch.Generator().manual_seed(concept_seed(concept))
        layers = self.layers(handle.layer)
        edits = nn.ModuleList(LoReFTParams(d_model, int(self.cfg["rank"]), generator) for _ in layers).to(model.device)
        positions = Positions(self.cfg["positions"], from_generation=False)

        def current(number: int, n: int):  # R is recomputed from the free matrix in every forward pass
            edit = edits[number]
            return edit.R().expand(n, -1, -1), edit.W.expand(n, -1, -1), edit.b.expand(n, -1)

        def before(batch: LMBatch) -> None:
            positions.set_prompt(batch.mask.bool() & ~batch.response)

        with loreft_hook(model, layers, current, positions):
            finetune(model, list(edits.parameters()), concept, self.cfg, before_batch=before)
        with torch.no_grad():  # [n_layers, r, d] and [n_layers, r]
            return {"R": torch.stack([e.R() for e in edits]).cpu(), "W": torch.stack([e.W for e in edits]).cpu(),
                    "b": torch.stack([e.b for e in edits]).cpu()}

    def steering(self, tensors, model, layer, rows):
        idx = concept_rows(rows, "cpu")
        R, W, b = (tensors[k].float()[idx].to(model.device) for k in ("R", "W", "b"))  # [B, n_layers, ...]
        layers = self.layers(layer)
        if R.shape[1] != len(layers):
            raise ValueError(f"the LoReFT artifact edits {R.shape[1]} blocks, the config {len(layers)} ({layers})")

        def per_row(number: int, n: int):
            if n != len(idx):
                raise ValueError(f"LoReFT steering got a batch of {n} rows for a plan of {len(idx)}")
            return R[:, number], W[:, number], b[:, number]

        return loreft_hook(model, layers, per_row, Positions(self.cfg["positions"], from_generation=True))
