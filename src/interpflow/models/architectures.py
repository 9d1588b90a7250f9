"""Where each architecture keeps its decoder blocks.

Everything else in interpflow is architecture-generic: hooks sit on the blocks this table
names, and nothing else assumes a module name. Add a row to support a new family.
"""

from __future__ import annotations

from torch import nn

from interpflow.errors import ConfigError

# model_type (from the Hugging Face config) -> dotted path of the ModuleList of decoder blocks
DECODER_BLOCKS: dict[str, str] = {
    "llama": "model.layers",
    "mistral": "model.layers",
    "qwen2": "model.layers",
    "qwen3": "model.layers",
    "gemma": "model.layers",
    "gemma2": "model.layers",
    "gemma3_text": "model.layers",
    "phi3": "model.layers",
    "gpt2": "transformer.h",
    "gpt_neox": "gpt_neox.layers",
}


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a causal LM, in order."""
    model_type = model.config.model_type
    path = DECODER_BLOCKS.get(model_type)
    if path is None:
        raise ConfigError(
            f"architecture {model_type!r} is not in interpflow.models.architectures.DECODER_BLOCKS "
            f"(known: {', '.join(sorted(DECODER_BLOCKS))}); add the dotted path of its decoder blocks there"
        )
    module = model
    for part in path.split("."):
        module = getattr(module, part)
    return module


def check_layer(model: nn.Module, layer: int) -> None:
    n_layers = len(decoder_blocks(model))
    if not 0 <= layer < n_layers:
        raise ConfigError(
            f"layer {layer} is outside the model: it has {n_layers} decoder blocks (valid layers: 0..{n_layers - 1})"
        )
