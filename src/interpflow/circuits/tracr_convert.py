"""A compiled Tracr program as a TransformerLens `HookedTransformer`, and the encoding of its
inputs and outputs.

The weights are assembled from the craft model the way tracr's own assembler lays them out
(`tracr.compiler.assemble`): the same residual basis, embeddings, zero-padded heads and MLPs, and
attention scaled by sqrt(d_head) with tracr's d_head, so the TransformerLens model computes what
tracr's compiled model computes. tracr's assembler is not called: it initialises a Haiku model,
and JAX compiling it costs seconds per task while the weights are a few projections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tracr.compiler import nodes
from tracr.craft import bases, transformers
from tracr.craft.vectorspace_fns import project
from tracr.rasp import rasp
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interpflow.circuits.tracr_compile import BOS, PAD, Compiled


@dataclass(frozen=True)
class Codec:
    """Token ids in and values out. Inputs start with BOS; position 0 of the output is BOS's and
    is dropped by `decode`."""

    input_tokens: tuple
    """id -> token; holds BOS and PAD."""
    output_values: tuple | None
    """id -> output value of a categorical task; None for a numerical one."""

    @property
    def categorical(self) -> bool:
        return self.output_values is not None

    def encode(self, inputs: Sequence[Sequence]) -> torch.Tensor:
        """[batch, 1 + length] token ids of equally long inputs, BOS first."""
        ids = {token: i for i, token in enumerate(self.input_tokens)}
        lengths = {len(seq) for seq in inputs}
        if len(lengths) != 1:
            raise ValueError(f"inputs of different lengths {sorted(lengths)} in one batch")
        try:
            rows = [[ids[BOS]] + [ids[token] for token in seq] for seq in inputs]
        except KeyError as err:
            raise ValueError(f"token {err.args[0]!r} is not in the vocabulary") from None
        return torch.tensor(rows, dtype=torch.long)

    def decode(self, logits: torch.Tensor) -> list[list]:
        """Per input, the value at each position after BOS: the argmax over the output values
        (categorical) or the one output dimension (numerical)."""
        body = logits[:, 1:]
        if self.output_values is None:
            return body[..., 0].tolist()
        return [[self.output_values[i] for i in row] for row in body.argmax(-1).tolist()]


def spaces(compiled: Compiled) -> tuple[bases.VectorSpaceWithBasis, ...]:
    """(residual, tokens, indices, output) spaces, as tracr's assembler builds them."""
    graph = compiled.graph
    token_values = graph.nodes[rasp.tokens.label][nodes.VALUE_SET] | {BOS, PAD}
    tokens = bases.VectorSpaceWithBasis.from_values(rasp.tokens.label, token_values)
    indices = bases.VectorSpaceWithBasis.from_values(rasp.indices.label, range(compiled.task.max_seq_len))
    output = bases.VectorSpaceWithBasis(compiled.sink[nodes.OUTPUT_BASIS])
    residual = bases.join_vector_spaces(compiled.craft_model.residual_space, tokens, indices, output)
    return residual, tokens, indices, output


def codec_of(compiled: Compiled) -> Codec:
    _, tokens, _, output = spaces(compiled)
    values = tuple(d.value for d in output.basis) if compiled.task.categorical else None
    return Codec(tuple(d.value for d in tokens.basis), values)


def residual_labels(compiled: Compiled) -> list[str]:
    """The name of each residual dimension (tracr's `residual_labels`), e.g. 'tokens:a'."""
    return [str(d) for d in spaces(compiled)[0].basis]


def _heads(block) -> list[transformers.AttentionHead]:
    return list(block.as_multi().heads())


def config_kwargs(compiled: Compiled) -> dict:
    """HookedTransformerConfig arguments of the converted model (JSON-serialisable)."""
    residual, tokens, _, output = spaces(compiled)
    attention = [_heads(b) for b in compiled.craft_model.blocks if not isinstance(b, transformers.MLP)]
    mlps = [b for b in compiled.craft_model.blocks if isinstance(b, transformers.MLP)]
    all_heads = [h for layer in attention for h in layer]
    return {
        "n_layers": compiled.n_layers,
        "d_model": residual.num_dims,
        # tracr's choices: its key size is the largest query-key matrix side, and unused sizes are 1
        "n_heads": max((len(layer) for layer in attention), default=1),
        "d_head": max((max(h.w_qk.matrix.shape) for h in all_heads), default=1),
        "d_mlp": max((m.fst.output_space.num_dims for m in mlps), default=1),
        "n_ctx": compiled.task.max_seq_len + 1,
        "d_vocab": tokens.num_dims,
        "d_vocab_out": output.num_dims,
        "act_fn": "relu",
        "normalization_type": None,
        "attention_dir": "bidirectional",
        "positional_embedding_type": "standard",
        "original_architecture": "tracr",
        "use_attn_result": True,
        "use_split_qkv_input": True,
        "use_hook_mlp_in": True,
        "default_prepend_bos": False,
        "seed": 0,
        "device": "cpu",
    }


def state_dict(compiled: Compiled, cfg: dict) -> dict[str, torch.Tensor]:
    """The TransformerLens parameters (biases zero: craft blocks have none, tracr uses its `one`
    direction instead)."""
    residual, tokens, indices, output = spaces(compiled)
    d_model, n_heads, d_head, d_mlp = cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["d_mlp"]

    def into(space: bases.VectorSpaceWithBasis) -> np.ndarray:
        """[d_model, dim(space)]: reads `space` off the residual stream."""
        return project(residual, space).matrix

    w_e = project(tokens, residual).matrix
    one = bases.BasisDirection("one")
    if one in residual:
        w_e = w_e + residual.vector_from_basis_direction(one).magnitudes
    # Position 0 holds BOS and has no index; position p holds the token of index p - 1.
    w_pos = np.concatenate([np.zeros((1, d_model)), project(indices, residual).matrix])
    out = {"embed.W_E": w_e, "pos_embed.W_pos": w_pos, "unembed.W_U": into(output),
           "unembed.b_U": np.zeros(cfg["d_vocab_out"])}
    for layer in range(cfg["n_layers"]):
        w = {name: np.zeros(shape) for name, shape in (
            ("W_Q", (n_heads, d_model, d_head)), ("W_K", (n_heads, d_model, d_head)),
            ("W_V", (n_heads, d_model, d_head)), ("W_O", (n_heads, d_head, d_model)),
            ("W_in", (d_model, d_mlp)), ("W_out", (d_mlp, d_model)))}
        for block, components in zip(compiled.craft_model.blocks, compiled.blocks):
            if components[0].layer != layer:
                continue
            if isinstance(block, transformers.MLP):
                hidden = block.fst.output_space.num_dims
                w["W_in"][:, :hidden] = into(block.fst.input_space) @ block.fst.matrix
                w["W_out"][:hidden] = block.snd.matrix @ into(block.snd.output_space).T
                continue
            for h, head in enumerate(_heads(block)):
                qk, ov = head.w_qk.matrix.shape[1], head.w_ov.matrix.shape[1]
                if ov > d_head:
                    raise ValueError(f"{compiled.task.name}: a head's value size {ov} exceeds d_head {d_head}")
                w["W_Q"][h, :, :qk] = into(head.w_qk.left_space) @ head.w_qk.matrix
                w["W_K"][h, :, :qk] = into(head.w_qk.right_space)
                w["W_V"][h, :, :ov] = into(head.w_ov.input_space) @ head.w_ov.matrix
                w["W_O"][h, :ov] = into(head.w_ov.output_space).T
        prefix = f"blocks.{layer}"
        for name in ("W_Q", "W_K", "W_V", "W_O"):
            out[f"{prefix}.attn.{name}"] = w[name]
        for name in ("b_Q", "b_K", "b_V"):
            out[f"{prefix}.attn.{name}"] = np.zeros((n_heads, d_head))
        out[f"{prefix}.attn.b_O"] = np.zeros(d_model)
        out[f"{prefix}.mlp.W_in"], out[f"{prefix}.mlp.W_out"] = w["W_in"], w["W_out"]
        out[f"{prefix}.mlp.b_in"], out[f"{prefix}.mlp.b_out"] = np.zeros(d_mlp), np.zeros(d_model)
    return {name: torch.tensor(value, dtype=torch.float32) for name, value in out.items()}


def build_model(cfg: dict, weights: dict[str, torch.Tensor]) -> HookedTransformer:
    """A HookedTransformer with exactly `weights` as its parameters."""
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    params = dict(model.named_parameters())
    missing, unexpected = set(params) - set(weights), set(weights) - set(params)
    if missing or unexpected:
        raise ValueError(f"weights do not fit the config: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(weights[name])
    return model.eval()
