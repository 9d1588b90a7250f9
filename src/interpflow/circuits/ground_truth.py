"""The circuit a Tracr-compiled model has by construction, in the node and edge names of
`interpflow.circuits.graph`, and which nodes implement each RASP variable.

A residual variable (a RASP expression's directions, `tokens`, `indices`, or a helper direction)
is written by the embedding or by compiled blocks and read by later blocks. Every head or MLP
tracr compiled is a node; an edge goes from each writer of a variable to each later block that
reads it, and from the writers of the program's output to the output node. Reads of the
constant `one` direction and of the BOS token are not edges (see `tracr_compile.Component`).
Padding heads, which tracr leaves at zero, are never nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracr.compiler import nodes
from tracr.rasp import rasp

from interpflow.circuits.graph import EMBED, Circuit, output_node
from interpflow.circuits.tracr_compile import Compiled, block_writes, expression_blocks

EMBEDDED = (rasp.tokens.label, rasp.indices.label)


@dataclass(frozen=True)
class GroundTruth:
    circuit: Circuit
    correspondence: dict[str, list[str]]
    """RASP expression name -> the nodes that compute it (tokens and indices -> the embedding;
    a selector -> the heads that attend with it)."""


def ground_truth(compiled: Compiled) -> GroundTruth:
    writers: dict[str, list[str]] = {label: [EMBED] for label in EMBEDDED}
    edges: set[tuple[str, str]] = set()
    for block in compiled.blocks:
        # A block's components read what earlier blocks wrote; the heads of one layer never read
        # each other, so a block's writes are registered once all of it has read.
        for component in block:
            for variable in component.reads:
                edges.update((writer, component.node) for writer in writers.get(variable, ()))
        for component in block:
            for variable in component.writes:
                writers.setdefault(variable, []).append(component.node)
    out = output_node(compiled.n_layers)
    edges.update((writer, out) for writer in writers[compiled.sink[nodes.ID]])
    components = [c.node for c in compiled.components]
    circuit = Circuit.from_edges(edges, extra_nodes=[EMBED, *components, out])
    return GroundTruth(circuit, correspondence(compiled))


def correspondence(compiled: Compiled) -> dict[str, list[str]]:
    graph = compiled.graph
    out: dict[str, list[str]] = {graph.nodes[label][nodes.EXPR].name: [EMBED]
                                 for label in EMBEDDED if label in graph.nodes}
    selectors: dict[str, list[str]] = {}
    for label, block in expression_blocks(graph).items():
        writes = block_writes(block)
        found = [c for c in compiled.components if c.writes & writes]
        if not found:
            raise AssertionError(f"{compiled.task.name}: no component computes {label}")
        expr = graph.nodes[label][nodes.EXPR]
        out[expr.name] = [c.node for c in found]
        if isinstance(expr, (rasp.Aggregate, rasp.SelectorWidth)):
            heads = selectors.setdefault(expr.selector.name, [])
            heads += [c.node for c in found if not c.is_mlp and c.node not in heads]
    return out | selectors
