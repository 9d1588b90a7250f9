"""Compile a task's RASP program with tracr's own compiler stages, keeping what the ground truth
is read from: the RASP graph (which expression became which craft block) and the craft model
(which residual directions each block reads and writes).

The stages of `tracr.compiler.compiling.compile_rasp_to_model` are called one by one, so the
graph and the craft model are kept. Its last stage, assembling Haiku weights, is left to
`tracr_convert`, which lays the same weights out for TransformerLens; `tracr_assembled` runs
tracr's own last stage, to check against.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
from tracr.compiler import (
    assemble,
    basis_inference,
    craft_graph_to_model,
    craft_model_to_transformer,
    expr_to_craft_graph,
    nodes,
    rasp_to_graph,
    validating,
)
from tracr.craft import bases, transformers
from tracr.rasp import rasp

from interpflow.circuits.graph import head_node, mlp_node
from interpflow.circuits.tasks import Task, get_task

BOS = "BOS"
PAD = "PAD"
# tracr's default: larger approximates discretising MLPs better, too large loses float precision.
MLP_EXACTNESS = 100


@dataclass(frozen=True)
class Component:
    """One head or MLP of the compiled model and the residual variables it reads and writes.

    Variables are the names of residual directions: a RASP expression's label, `tokens`,
    `indices`, or a helper direction tracr adds (a selector width's attention output). The
    constant `one` direction and the BOS token are left out: every block may read them
    to do its work, and they carry nothing about the input (InterpBench leaves them out too).
    """

    node: str
    layer: int
    is_mlp: bool
    reads: frozenset[str]
    writes: frozenset[str]


@dataclass
class Compiled:
    task: Task
    program: rasp.SOp
    graph: nx.DiGraph
    sink: dict
    craft_model: transformers.SeriesWithResiduals
    blocks: list[list[Component]]
    """The craft model's blocks in order, each as its components (a layer's heads, or its MLP)."""

    @property
    def n_layers(self) -> int:
        return self.blocks[-1][0].layer + 1

    @property
    def has_mlp(self) -> tuple[bool, ...]:
        layers = {c.layer for block in self.blocks for c in block if c.is_mlp}
        return tuple(layer in layers for layer in range(self.n_layers))

    @property
    def components(self) -> list[Component]:
        return [c for block in self.blocks for c in block]


def compile_program(task: Task | str) -> Compiled:
    task = get_task(task) if isinstance(task, str) else task
    program = task.program()
    vocab = set(task.vocab)
    if BOS in vocab or PAD in vocab:
        raise ValueError(f"{task.name}: the vocabulary may not hold {BOS!r} or {PAD!r}")
    unsupported = validating.static_validate(program)
    if unsupported:
        raise NotImplementedError(f"{task.name}: " + "; ".join(f"{u.expr.name}: {u.reason}" for u in unsupported))

    extracted = rasp_to_graph.extract_rasp_graph(program)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, vocab, task.max_seq_len)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph, bos_dir=bases.BasisDirection(rasp.tokens.label, BOS), mlp_exactness=MLP_EXACTNESS)
    craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)
    if not craft_model.blocks:
        raise ValueError(f"{task.name}: the program compiles to no attention or MLP block")
    return Compiled(task, program, graph, sink, craft_model, place_blocks(craft_model))


def tracr_assembled(compiled: Compiled) -> assemble.AssembledTransformerModel:
    """tracr's own compiled model (Haiku) of the same craft model: seconds of JAX compilation."""
    return craft_model_to_transformer.craft_model_to_transformer(
        craft_model=compiled.craft_model, graph=compiled.graph, sink=compiled.sink,
        max_seq_len=compiled.task.max_seq_len, compiler_bos=BOS, compiler_pad=PAD, causal=False)


def place_blocks(craft_model: transformers.SeriesWithResiduals) -> list[list[Component]]:
    """Put each craft block in its layer the way tracr's assembler does: layers alternate attention
    and MLP, and a block goes to the next free slot of its kind (two MLPs in a row leave an empty
    attention slot between them, two attention blocks an empty MLP slot)."""
    out, slot = [], 0  # slot 2l is layer l's attention, 2l + 1 its MLP
    for block in craft_model.blocks:
        is_mlp = isinstance(block, transformers.MLP)
        if slot % 2 != int(is_mlp):
            slot += 1
        layer = slot // 2
        if is_mlp:
            out.append([Component(mlp_node(layer), layer, True, _variables(block.fst.input_space),
                                  _variables(block.snd.output_space))])
        else:
            out.append([
                Component(head_node(layer, h), layer, False,
                          _variables(head.w_qk.left_space, head.w_qk.right_space, head.w_ov.input_space),
                          _variables(head.w_ov.output_space))
                for h, head in enumerate(block.as_multi().heads())
            ])
        slot += 1
    return out


def _variables(*spaces: bases.VectorSpaceWithBasis) -> frozenset[str]:
    names = set()
    for space in spaces:
        for direction in space.basis:
            if direction.name == "one" or (direction.name == rasp.tokens.label and direction.value == BOS):
                continue
            names.add(direction.name)
    return frozenset(names)


def block_writes(block) -> frozenset[str]:
    """The residual variables a RASP expression's craft block writes (all its parts)."""
    if isinstance(block, transformers.MLP):
        return _variables(block.snd.output_space)
    if isinstance(block, transformers.AttentionHead):
        return _variables(block.w_ov.output_space)
    if isinstance(block, transformers.MultiAttentionHead):
        return frozenset().union(*(block_writes(h) for h in block.heads()))
    if isinstance(block, transformers.SeriesWithResiduals):
        return frozenset().union(*(block_writes(b) for b in block.blocks))
    raise TypeError(f"unexpected craft block {type(block).__name__}")


def expression_blocks(graph: nx.DiGraph) -> dict[str, object]:
    """Graph label -> craft block, for the expressions tracr turned into model components."""
    return {label: data[nodes.MODEL_BLOCK] for label, data in graph.nodes(data=True)
            if data.get(nodes.MODEL_BLOCK) is not None}
