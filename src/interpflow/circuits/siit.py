"""Strict interchange intervention training (SIIT, InterpBench): a freshly initialised low-level (LL)
transformer learns a Tracr program (the high-level model, HL) so that its circuit is known.

Each HL node (a head or MLP that computes a RASP operation) corresponds to the LL node of the same
name; the LL model has more, smaller heads (InterpBench's shapes: at least 4 heads, d_head halved,
d_model = n_heads * d_head, d_mlp = 4 * d_model). Per batch of (base, source) inputs, three losses:

- behaviour: the LL model's output on the base against the HL model's (the task's labels);
- IIT: for a random HL node n, run HL on the base with n's output taken from the source run and LL
  on the base with its node for n taken from *its* source run; LL must match HL's patched output;
- strict IIT: for a random LL node outside the circuit, patched the same way, LL must still give the
  base's own label (the node must not matter).

loss = behaviour_weight * behaviour + iit_weight * IIT + strict_weight * strict (InterpBench: 1, 1,
0.4), Adam, gradient norm clipped. Training stops once validation accuracy, interchange-intervention
accuracy (IIA) and strict accuracy all reach `early_stop_accuracy` (InterpBench: 99.5%).
"""

from __future__ import annotations

import random
import re

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interpflow.circuits.graph import head_node, mlp_node

DEFAULTS = {
    "epochs": 100,                  # InterpBench: up to 2,000, stopped early
    "batch_size": 256,              # InterpBench's
    "lr": 1e-2,                     # InterpBench: 1e-3 over its 20x more epochs
    "clip_grad_norm": 0.1,          # InterpBench's
    "behavior_weight": 1.0,         # InterpBench's
    "iit_weight": 1.0,              # InterpBench's
    "strict_weight": 0.4,           # InterpBench's
    "early_stop_accuracy": 0.995,   # InterpBench's 99.5
    "atol": 0.05,                   # numerical outputs: right within this (InterpBench's)
    "val_fraction": 0.2,            # InterpBench's test_size
    "compression": 2.0,             # InterpBench's default compression of d_head
    "min_heads": 4,
    "eval_every": 5,                # epochs between validation passes (each patches every node)
    "seed": 0,
}
_HEAD = re.compile(r"^blocks\.(\d+)\.attn\.hook_result\[(\d+)\]$")


def node_hook(node: str) -> tuple[str, int | None]:
    """(TransformerLens hook name, head index or None) where a node's output can be read or replaced."""
    if m := _HEAD.match(node):
        return f"blocks.{m.group(1)}.attn.hook_result", int(m.group(2))
    if node.endswith(".hook_mlp_out"):
        return node, None
    raise ValueError(f"not a head or MLP node: {node!r}")


def node_outputs(model: HookedTransformer, tokens: torch.Tensor, nodes: list[str]) -> dict[str, torch.Tensor]:
    """Each node's output on `tokens`: [batch, pos, d_model] (a head's: its share of the attention output)."""
    names = {node_hook(n)[0] for n in nodes}
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    out = {}
    for node in nodes:
        name, head = node_hook(node)
        out[node] = cache[name] if head is None else cache[name][:, :, head]
    return out


def run_patched(model: HookedTransformer, tokens: torch.Tensor, patches: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of `tokens` with each patched node's output replaced by the given value."""
    hooks = []
    for node, value in patches.items():
        name, head = node_hook(node)

        def replace(activation, hook, value=value, head=head):
            if head is None:
                return value
            activation = activation.clone()
            activation[:, :, head] = value
            return activation

        hooks.append((name, replace))
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


def low_level_config(hl_cfg: dict, cfg: dict) -> dict:
    """The LL model's HookedTransformerConfig arguments: the HL model's, with InterpBench's shapes."""
    n_heads = max(cfg["min_heads"], hl_cfg["n_heads"])
    d_head = max(1, int(hl_cfg["d_head"] // cfg["compression"]))
    d_model = n_heads * d_head
    return {**hl_cfg, "d_model": d_model, "d_head": d_head, "n_heads": n_heads, "d_mlp": 4 * d_model,
            "act_fn": "gelu", "seed": cfg["seed"], "original_architecture": "siit"}


class Objective:
    """What the outputs are compared on: categorical (cross-entropy, argmax) or numerical (MSE, atol).
    Position 0 (BOS) is never scored."""

    def __init__(self, categorical: bool, atol: float):
        self.categorical, self.atol = categorical, atol

    def target(self, hl_logits: torch.Tensor) -> torch.Tensor:
        out = hl_logits[:, 1:]
        return out.argmax(-1) if self.categorical else out

    def loss(self, ll_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = ll_logits[:, 1:]
        if self.categorical:
            return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))
        return torch.nn.functional.mse_loss(out, target)

    def right(self, ll_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per example: every scored position right."""
        out = ll_logits[:, 1:]
        same = out.argmax(-1) == target if self.categorical else ((out - target).abs() <= self.atol).all(-1)
        return same.all(-1)


def all_nodes(model: HookedTransformer) -> list[str]:
    """Every head and MLP of the model."""
    out = []
    for layer in range(model.cfg.n_layers):
        out += [head_node(layer, h) for h in range(model.cfg.n_heads)]
        out.append(mlp_node(layer))
    return out


@torch.no_grad()
def evaluate(hl, ll, tokens: torch.Tensor, objective: Objective, circuit_nodes: list[str], seed: int) -> dict:
    """Accuracy, IIA (mean over circuit nodes) and strict accuracy (mean over the other LL nodes) on `tokens`."""
    generator = torch.Generator().manual_seed(seed)
    source = tokens[torch.randperm(len(tokens), generator=generator)]
    labels = objective.target(hl(tokens))
    accuracy = objective.right(ll(tokens), labels).float().mean().item()
    hl_source, ll_source = node_outputs(hl, source, circuit_nodes), node_outputs(ll, source, circuit_nodes)
    iia = [objective.right(run_patched(ll, tokens, {n: ll_source[n]}),
                           objective.target(run_patched(hl, tokens, {n: hl_source[n]}))).float().mean().item()
           for n in circuit_nodes]
    outside = [n for n in all_nodes(ll) if n not in circuit_nodes]
    ll_outside = node_outputs(ll, source, outside)
    strict = [objective.right(run_patched(ll, tokens, {n: ll_outside[n]}), labels).float().mean().item() for n in outside]
    return {"accuracy": accuracy, "iia": sum(iia) / len(iia) if iia else 1.0,
            "strict_accuracy": sum(strict) / len(strict) if strict else 1.0}


@torch.no_grad()
def node_effects(ll, tokens: torch.Tensor, objective: Objective, circuit_nodes: list[str], seed: int) -> list[dict]:
    """InterpBench's `iit` evaluation: each node of the model resample-ablated (its output taken from
    another input) and the share of inputs whose output then changes. A model that keeps its circuit
    shows effects on circuit nodes and none elsewhere."""
    generator = torch.Generator().manual_seed(seed)
    source = tokens[torch.randperm(len(tokens), generator=generator)]
    own = objective.target(ll(tokens))
    nodes = all_nodes(ll)
    sources = node_outputs(ll, source, nodes)
    return [{"node": n, "in_circuit": n in circuit_nodes,
             "effect": 1.0 - objective.right(run_patched(ll, tokens, {n: sources[n]}), own).float().mean().item()}
            for n in nodes]


def effect_summary(effects: list[dict]) -> dict:
    """Mean resample-ablation effect of the circuit's nodes and of the others."""
    inside = [e["effect"] for e in effects if e["in_circuit"]]
    outside = [e["effect"] for e in effects if not e["in_circuit"]]
    return {"mean_effect_in_circuit": sum(inside) / len(inside) if inside else None,
            "mean_effect_outside_circuit": sum(outside) / len(outside) if outside else None}


def train_siit(hl: HookedTransformer, hl_cfg: dict, tokens: torch.Tensor, circuit_nodes: list[str], categorical: bool,
               cfg: dict) -> tuple[HookedTransformer, dict, dict]:
    """Train the LL model on `tokens` (every input of the task, or a sample) against HL; returns it, its
    config arguments and its metrics: validation accuracy, IIA and strict accuracy, epochs run, and
    whether it stopped early."""
    cfg = {**DEFAULTS, **(cfg or {})}
    torch.manual_seed(cfg["seed"])
    random.seed(cfg["seed"])
    hl.eval()
    ll_cfg = low_level_config(hl_cfg, cfg)
    ll = HookedTransformer(HookedTransformerConfig(**ll_cfg))
    objective = Objective(categorical, cfg["atol"])
    order = torch.randperm(len(tokens))
    n_val = max(1, int(len(tokens) * cfg["val_fraction"]))
    val, train = tokens[order[:n_val]], tokens[order[n_val:]]
    outside = [n for n in all_nodes(ll) if n not in circuit_nodes]
    optimizer = torch.optim.Adam(ll.parameters(), lr=cfg["lr"])
    history, metrics, epoch = [], {}, 0
    for epoch in range(1, cfg["epochs"] + 1):
        ll.train()
        for batch in train[torch.randperm(len(train))].split(cfg["batch_size"]):
            source = batch[torch.randperm(len(batch))]
            with torch.no_grad():
                labels = objective.target(hl(batch))
                node = random.choice(circuit_nodes)
                hl_patched = objective.target(run_patched(hl, batch, node_outputs(hl, source, [node])))
            loss = cfg["behavior_weight"] * objective.loss(ll(batch), labels)
            ll_source = node_outputs(ll, source, [node])
            loss = loss + cfg["iit_weight"] * objective.loss(run_patched(ll, batch, ll_source), hl_patched)
            if outside and cfg["strict_weight"]:
                other = random.choice(outside)
                loss = loss + cfg["strict_weight"] * objective.loss(
                    run_patched(ll, batch, node_outputs(ll, source, [other])), labels)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ll.parameters(), cfg["clip_grad_norm"])
            optimizer.step()
        if epoch % cfg["eval_every"] and epoch != cfg["epochs"]:
            continue
        ll.eval()
        metrics = evaluate(hl, ll, val, objective, circuit_nodes, cfg["seed"] + epoch)
        history.append({"epoch": epoch, "loss": float(loss.detach()), **metrics})
        print(f"epoch {epoch}: loss {float(loss.detach()):.4f}, accuracy {metrics['accuracy']:.3f}, IIA {metrics['iia']:.3f}, "
              f"strict {metrics['strict_accuracy']:.3f}", flush=True)
        if min(metrics.values()) >= cfg["early_stop_accuracy"]:
            break
    effects = node_effects(ll, val, objective, circuit_nodes, cfg["seed"])
    return ll, ll_cfg, {**metrics, "epochs": epoch, "stopped_early": min(metrics.values()) >= cfg["early_stop_accuracy"],
                        "n_train": len(train), "n_val": len(val), **effect_summary(effects), "node_effects": effects,
                        "history": history}
