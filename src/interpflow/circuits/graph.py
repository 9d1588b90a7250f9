"""The computational graph of a TransformerLens model, in the names every circuit stage shares.

Nodes are where information is written to the residual stream, plus the output:

- ``blocks.0.hook_resid_pre``: the embeddings (token + position), one node;
- ``blocks.{l}.attn.hook_result[{h}]``: attention head ``h`` of layer ``l``;
- ``blocks.{l}.hook_mlp_out``: the MLP of layer ``l``;
- ``blocks.{L-1}.hook_resid_post``: the output (what the unembedding reads).

An edge ``(upstream, downstream)`` says that ``downstream`` reads what ``upstream`` wrote. A
discovery method may score finer edges, into a head's query, key or value input
(``blocks.{l}.hook_q_input[{h}]``, ``..._k_input``, ``..._v_input``) or into the MLP's input
(``blocks.{l}.hook_mlp_in``); InterpBench scores hypotheses after promoting those to the head and
the MLP, which is what :func:`normalise_edge` does. Circuits are compared only in normalised form.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

EMBED = "blocks.0.hook_resid_pre"
QKV = ("q", "k", "v")


def head_node(layer: int, head: int) -> str:
    return f"blocks.{layer}.attn.hook_result[{head}]"


def mlp_node(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def output_node(n_layers: int) -> str:
    return f"blocks.{n_layers - 1}.hook_resid_post"


def head_input(layer: int, head: int, letter: str) -> str:
    return f"blocks.{layer}.hook_{letter}_input[{head}]"


def mlp_input(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_in"


_HEAD_INPUT = re.compile(r"^blocks\.(\d+)\.hook_([qkv])_input\[(\d+)\]$")
_MLP_INPUT = re.compile(r"^blocks\.(\d+)\.hook_mlp_in$")
_LAYER = re.compile(r"^blocks\.(\d+)\.")


def normalise_node(name: str) -> str:
    """A head's q/k/v input is the head; the MLP's input is the MLP."""
    if m := _HEAD_INPUT.match(name):
        return head_node(int(m.group(1)), int(m.group(3)))
    if m := _MLP_INPUT.match(name):
        return mlp_node(int(m.group(1)))
    return name


def normalise_edge(edge: tuple[str, str]) -> tuple[str, str]:
    return normalise_node(edge[0]), normalise_node(edge[1])


def node_layer(name: str) -> int:
    m = _LAYER.match(name)
    if m is None:
        raise ValueError(f"not a node name: {name!r}")
    return int(m.group(1))


@dataclass(frozen=True)
class Circuit:
    """A set of nodes and edges, in normalised names."""

    nodes: frozenset[str] = field(default_factory=frozenset)
    edges: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @classmethod
    def from_edges(cls, edges, extra_nodes=()) -> "Circuit":
        normal = frozenset(normalise_edge(tuple(e)) for e in edges)
        nodes = {n for e in normal for n in e} | {normalise_node(n) for n in extra_nodes}
        return cls(frozenset(nodes), normal)


@dataclass(frozen=True)
class ModelGraph:
    """Every node and (normalised) edge of a model with ``n_layers`` blocks of ``n_heads`` heads.

    ``has_mlp[l]`` is False for a layer without an MLP (Tracr leaves some empty); such a layer
    contributes no MLP node. Upstream nodes of a layer-``l`` head are the embeddings and every
    head and MLP of earlier layers; the MLP of layer ``l`` also reads layer ``l``'s heads; the
    output reads everything.
    """

    n_layers: int
    n_heads: int
    has_mlp: tuple[bool, ...]

    @classmethod
    def of(cls, n_layers: int, n_heads: int, has_mlp=True) -> "ModelGraph":
        flags = tuple([has_mlp] * n_layers) if isinstance(has_mlp, bool) else tuple(has_mlp)
        if len(flags) != n_layers:
            raise ValueError(f"has_mlp has {len(flags)} entries for {n_layers} layers")
        return cls(n_layers, n_heads, flags)

    @property
    def nodes(self) -> list[str]:
        out = [EMBED]
        for layer in range(self.n_layers):
            out += [head_node(layer, h) for h in range(self.n_heads)]
            if self.has_mlp[layer]:
                out.append(mlp_node(layer))
        out.append(output_node(self.n_layers))
        return out

    def upstream_of(self, node: str) -> list[str]:
        """The nodes whose output ``node`` reads, in order."""
        out_name = output_node(self.n_layers)
        if node == out_name:
            return [n for n in self.nodes if n != out_name]
        layer = node_layer(node)
        before = [EMBED]
        for l in range(layer):
            before += [head_node(l, h) for h in range(self.n_heads)]
            if self.has_mlp[l]:
                before.append(mlp_node(l))
        if node == mlp_node(layer):
            before += [head_node(layer, h) for h in range(self.n_heads)]
        return before

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(up, down) for down in self.nodes if down != EMBED for up in self.upstream_of(down)]
