"""Edge-level activation patching of a TransformerLens model (ACDC's resample ablation of edges).

An edge ``u -> d`` runs from a node that writes to the residual stream (the embeddings, a head, an
MLP) to an input that reads it: a head's query, key or value input, an MLP's input, or the output.
With no layer norm the residual stream is the sum of what every upstream node wrote (plus constant
biases), so patching edge ``u -> d`` means

    input of d  =  residual input of d  -  patch[u -> d] * (value_u - corrupt_u)

where ``value_u`` is what ``u`` wrote in this forward pass and ``corrupt_u`` what it wrote on the
corrupted input. ``patch`` is 0 (clean), 1 (corrupted) or anything between (SP's soft masks,
mask gradients). Because ``value_u`` is live, a node whose inputs were patched passes its changed
output on through its unpatched edges, as in ACDC. Hooks: node outputs are read at
``blocks.0.hook_resid_pre`` (embeddings), ``attn.hook_result`` (heads) and ``hook_mlp_out``;
inputs are rewritten at ``hook_{q,k,v}_input``, ``hook_mlp_in`` and the last ``hook_resid_post``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from transformer_lens import HookedTransformer

from interpflow.circuits.graph import (
    QKV, ModelGraph, head_input, head_node, mlp_input, normalise_node, output_node,
)


def graph_of(model: HookedTransformer) -> ModelGraph:
    """The model's graph; an MLP whose input or output weights are all zero (Tracr) is no node."""
    cfg = model.cfg
    if cfg.attn_only:
        has_mlp = [False] * cfg.n_layers
    else:
        has_mlp = [bool(block.mlp.W_in.any()) and bool(block.mlp.W_out.any()) for block in model.blocks]
    return ModelGraph.of(cfg.n_layers, cfg.n_heads, tuple(has_mlp))


def downstream_inputs(graph: ModelGraph) -> list[str]:
    """Every input that reads the residual stream, in forward order."""
    out = []
    for layer in range(graph.n_layers):
        out += [head_input(layer, h, letter) for letter in QKV for h in range(graph.n_heads)]
        if graph.has_mlp[layer]:
            out.append(mlp_input(layer))
    out.append(output_node(graph.n_layers))
    return out


def input_edges(graph: ModelGraph) -> list[tuple[str, str]]:
    """The fine edges (upstream node, downstream input) a discovery method scores."""
    return [(up, down) for down in downstream_inputs(graph)
            for up in graph.upstream_of(normalise_node(down))]


@dataclass
class _Receiver:
    """One hook whose input is rewritten: rows are heads (or a single row), columns upstream nodes."""

    hook: str
    per_head: bool
    n_rows: int
    n_up: int                 # reads upstream nodes 0 .. n_up - 1
    edges: torch.Tensor       # edge index of each (row, col) below
    rows: torch.Tensor
    cols: torch.Tensor


class EdgePatcher:
    """Runs ``model`` on ``clean_tokens`` with any set of edges patched to ``corrupt_tokens``' values.

    Both token batches are ``[batch, pos]`` of the same shape; every run handles the whole batch,
    on the model's device. Node outputs on both inputs are computed once, here.
    """

    def __init__(self, model: HookedTransformer, clean_tokens: torch.Tensor, corrupt_tokens: torch.Tensor,
                 graph: ModelGraph | None = None):
        cfg = model.cfg
        if not (cfg.use_attn_result and cfg.use_split_qkv_input and cfg.use_hook_mlp_in):
            raise ValueError("edge patching needs use_attn_result, use_split_qkv_input and use_hook_mlp_in")
        if cfg.normalization_type is not None:
            raise ValueError("edge patching assumes a model without layer norm")
        if clean_tokens.shape != corrupt_tokens.shape:
            raise ValueError(f"clean {tuple(clean_tokens.shape)} and corrupted {tuple(corrupt_tokens.shape)} differ")
        self.model = model
        self.device = next(model.parameters()).device
        self.graph = graph or graph_of(model)
        self.clean_tokens, self.corrupt_tokens = clean_tokens.to(self.device), corrupt_tokens.to(self.device)
        self.upstream = [n for n in self.graph.nodes if n != output_node(self.graph.n_layers)]
        self.up_index = {n: i for i, n in enumerate(self.upstream)}
        self.edges = input_edges(self.graph)
        self.edge_index = {e: i for i, e in enumerate(self.edges)}
        self.edge_up = torch.tensor([self.up_index[u] for u, _ in self.edges], device=self.device)
        self._receivers = self._build_receivers()
        # how many upstream nodes come before each layer (what its heads read)
        self._before_layer = [self.up_index[head_node(layer, 0)] for layer in range(self.graph.n_layers)]
        with torch.no_grad():
            self.clean_logits, self.clean_values, self._clean_resid = self._record(self.clean_tokens)
            self.corrupt_logits, self.corrupt_values, _ = self._record(self.corrupt_tokens)
        self.value_diff = self.clean_values - self.corrupt_values

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def _build_receivers(self) -> list[_Receiver]:
        groups: dict[str, list[tuple[int, int, int]]] = {}
        for i, (up, down) in enumerate(self.edges):
            hook, row = _hook_of(down)
            groups.setdefault(hook, []).append((i, row, self.up_index[up]))
        out = []
        for hook, items in groups.items():
            idx, rows, cols = (torch.tensor(col, device=self.device) for col in zip(*items))
            per_head = "_input" in hook
            out.append(_Receiver(hook, per_head, self.graph.n_heads if per_head else 1,
                                 int(cols.max()) + 1, idx, rows, cols))
        return out

    def _writer_hooks(self, values: list, embed: torch.Tensor | None = None) -> list:
        """Hooks that append each upstream node's output (embeddings, heads, MLP) to ``values``."""

        def embeddings(x, hook):
            x = x if embed is None else embed
            values.append(x)
            return x

        def heads(x, hook):
            values.extend(x.unbind(dim=2))

        def mlp(x, hook):
            values.append(x)

        hooks = [("blocks.0.hook_resid_pre", embeddings)]
        for layer in range(self.graph.n_layers):
            hooks.append((f"blocks.{layer}.attn.hook_result", heads))
            if self.graph.has_mlp[layer]:
                hooks.append((f"blocks.{layer}.hook_mlp_out", mlp))
        return hooks

    def _record(self, tokens: torch.Tensor):
        values: list[torch.Tensor] = []
        resid: list[torch.Tensor] = []
        hooks = self._writer_hooks(values) + [
            (f"blocks.{layer}.hook_resid_pre", lambda x, hook: resid.append(x))
            for layer in range(self.graph.n_layers)]
        with self.model.hooks(fwd_hooks=hooks):
            logits = self.model(tokens)
        return logits, torch.stack(values), resid

    def run(self, patch: torch.Tensor | None = None, *, start_layer: int = 0,
            embed: torch.Tensor | None = None) -> torch.Tensor:
        """Logits on the clean tokens with ``patch`` (``[n_edges]``, 0 = clean, 1 = corrupted).

        ``start_layer > 0`` starts from the clean residual stream of that layer: valid only when no
        edge into an earlier layer is patched (ACDC's order guarantees it). ``embed`` replaces the
        embeddings (EAP-IG's interpolation).
        """
        patch = self.zeros() if patch is None else patch
        if start_layer and embed is not None:
            raise ValueError("an embedding override needs start_layer=0")
        values: list[torch.Tensor] = [] if not start_layer else \
            list(self.clean_values[: self._before_layer[start_layer]].unbind(0))
        hooks = self._writer_hooks(values, embed)
        diffs: dict[int, torch.Tensor] = {}  # (live - corrupted) of the first n upstream nodes, by n
        for rec in self._receivers:
            weights = patch[rec.edges]
            if not weights.requires_grad and not weights.any():
                continue
            matrix = patch.new_zeros(rec.n_rows, rec.n_up).index_put((rec.rows, rec.cols), weights)
            hooks.append((rec.hook, self._patch_hook(rec, matrix, values, diffs)))
        with self.model.hooks(fwd_hooks=hooks):
            if start_layer:
                return self.model(self._clean_resid[start_layer], start_at_layer=start_layer)
            return self.model(self.clean_tokens)

    def _patch_hook(self, rec: _Receiver, matrix: torch.Tensor, values: list, diffs: dict) -> Callable:
        def hook(x, hook):
            if rec.n_up not in diffs:  # a layer's q, k and v inputs read the same nodes
                diffs[rec.n_up] = torch.stack(values[: rec.n_up]) - self.corrupt_values[: rec.n_up]
            diff = diffs[rec.n_up]
            if rec.per_head:
                return x - torch.einsum("hu,ubpd->bphd", matrix.to(x.dtype), diff)
            return x - torch.einsum("u,ubpd->bpd", matrix[0].to(x.dtype), diff)
        return hook

    def zeros(self) -> torch.Tensor:
        """An all-clean patch vector."""
        return torch.zeros(self.n_edges, device=self.device)

    def patch_from_nodes(self, keep: torch.Tensor) -> torch.Tensor:
        """Edge patch that replaces each upstream node's output by ``1 - keep[node]`` of its corrupted
        value everywhere it is read (node-level patching); ``keep`` is ``[len(upstream)]``."""
        return 1.0 - keep[self.edge_up]

    def input_gradients(self, loss_fn: Callable[[torch.Tensor], torch.Tensor],
                        embed: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """d loss / d (every receiver's input) on the clean tokens (embeddings optionally replaced)."""
        inputs: dict[str, torch.Tensor] = {}

        def keep(x, hook):
            inputs[hook.name] = x
            return x

        start = self.clean_values[0] if embed is None else embed
        start = start.detach().requires_grad_(True)
        hooks = self._writer_hooks([], start) + [(rec.hook, keep) for rec in self._receivers]
        with torch.enable_grad(), self.model.hooks(fwd_hooks=hooks):
            loss = loss_fn(self.model(self.clean_tokens))
            names = list(inputs)
            grads = torch.autograd.grad(loss, [inputs[n] for n in names], allow_unused=True)
        return {n: (torch.zeros_like(inputs[n]) if g is None else g) for n, g in zip(names, grads)}

    def attribute(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per edge: (corrupt_u - clean_u) . gradient at d, summed over examples and positions."""
        scores = self.zeros()
        for rec in self._receivers:
            diff = -self.value_diff[: rec.n_up]
            grad = grads[rec.hook] if rec.per_head else grads[rec.hook].unsqueeze(2)
            table = torch.einsum("bphd,ubpd->hu", grad, diff.to(grad.dtype))
            scores[rec.edges] = table[rec.rows, rec.cols].float()
        return scores


def _hook_of(downstream: str) -> tuple[str, int]:
    """The hook that carries ``downstream`` and its row (head index, or 0)."""
    if downstream.endswith("]"):
        name, head = downstream[:-1].split("[")
        return name, int(head)
    return downstream, 0
