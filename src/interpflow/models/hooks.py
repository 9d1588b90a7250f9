"""Plain PyTorch forward hooks on decoder blocks: capture the residual stream, add steering vectors."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator

import torch
from torch import nn

from interpflow.models.architectures import decoder_blocks


class _StopForward(Exception):
    """Raised by the capture hook so that blocks after the captured one never run."""


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def residual_after_block(
    model: nn.Module, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor,
    position_ids: torch.Tensor | None = None, cache=None,
) -> torch.Tensor:
    """Residual stream after decoder block `layer` for every token: [batch, seq, d_model].

    The forward pass stops right after that block: no later blocks, no final norm, no LM head.
    `cache` (keys and values of earlier positions, e.g. a shared prefix) receives the new ones.
    """
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(_hidden(output))
        raise _StopForward

    handle = decoder_blocks(model)[layer].register_forward_hook(hook)
    try:
        caching = {"use_cache": False} if cache is None else {"cache": cache, "use_cache": True}
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **caching)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured[0]


@contextmanager
def edit_residual(model: nn.Module, layer: int, edit: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace the residual stream after block `layer` by edit(hidden) ([B, T, d] -> [B, T, d]).

    Applies to every forward call inside the context (prefill and each cached decoding step) and
    keeps the autograd graph, so training can differentiate through the edit.
    """

    def hook(_module, _inputs, output):
        hidden = _hidden(output)
        edited = edit(hidden).to(hidden.dtype)
        return (edited, *output[1:]) if isinstance(output, tuple) else edited

    handle = decoder_blocks(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def add_to_residual(model: nn.Module, layer: int, vectors: torch.Tensor) -> ContextManager[None]:
    """Add `vectors` ([batch, d_model], already scaled by strength) after block `layer` at every
    position: prompt tokens during prefill and each generated token during cached decoding."""
    return edit_residual(model, layer, lambda hidden: hidden + vectors[:, None, :].to(hidden.dtype))


def clamp_residual(model: nn.Module, layer: int, directions: torch.Tensor, strength: torch.Tensor, read: torch.Tensor,
                   read_bias: torch.Tensor, threshold: torch.Tensor) -> ContextManager[None]:
    """Set each row's latent to `strength` after block `layer`, at every position.

    Row b's latent is z(h) = pre if pre > threshold[b] else 0, pre = h . read[b] + read_bias[b];
    the hidden state becomes h + (strength[b] - z(h)) * directions[b]. For an SAE latent this is
    "set the latent, decode, add back the SAE error"; for a unit direction it sets the projection.
    """

    def clamp(hidden: torch.Tensor) -> torch.Tensor:
        h = hidden.float()
        pre = torch.einsum("btd,bd->bt", h, read.to(h)) + read_bias.to(h)[:, None]
        z = torch.where(pre > threshold.to(h)[:, None], pre, torch.zeros_like(pre))
        return h + (strength.to(h)[:, None] - z)[..., None] * directions.to(h)[:, None, :]

    return edit_residual(model, layer, clamp)
