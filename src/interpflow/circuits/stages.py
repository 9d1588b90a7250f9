"""The circuit benchmark's stages, as the rules call them: compile a task, SIIT-train its low-level
model, run one discovery method and score it against the known circuit, and the leaderboard
(`leaderboard.py`).

Models on disk: `<kind>.safetensors` + `<kind>.json` in the format of `tracr_model.py`; a SIIT model
is stored the same way (its own config, the same circuit and correspondence: its nodes carry the
same names as the Tracr model's), with its training metrics under "siit".
"""

from __future__ import annotations

import random
import time

import torch

from interpflow.artifacts import read_json, write_json, write_parquet, write_tensors
from interpflow.circuits import RANKS_BY_SCORE
from interpflow.circuits.discovery import discover
from interpflow.circuits.patching import EdgePatcher
from interpflow.circuits.scoring import aurocs, node_realism, score_sweep
from interpflow.circuits.siit import train_siit
from interpflow.circuits.tasks import get_task
from interpflow.circuits.tracr_model import FORMAT, TracrModel, compile_task, load, save


def circuit_compile(task: str, out_weights: str, out_meta: str) -> None:
    """Compile a task's RASP program with Tracr into a TransformerLens model and its known circuit."""
    start = time.perf_counter()
    model = compile_task(task)
    save(model, out_weights, out_meta)
    cfg = model.cfg
    print(f"{task}: {cfg['n_layers']} layers x {cfg['n_heads']} heads, d_model {cfg['d_model']}, d_head {cfg['d_head']}, "
          f"d_mlp {cfg['d_mlp']}; circuit {len(model.circuit.nodes)} nodes, {len(model.circuit.edges)} edges; "
          f"{time.perf_counter() - start:.1f} s")


def task_inputs(model: TracrModel, count: int, seed: int) -> torch.Tensor:
    """Token ids of `count` inputs of the model's task (all of them when there are fewer)."""
    return model.codec.encode(get_task(model.task).inputs(count=count, seed=seed))


def clean_and_corrupt(model: TracrModel, data_cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean inputs and, for each, a different input of the task as its corruption (resampling)."""
    clean = task_inputs(model, data_cfg["n_examples"], data_cfg["seed"])
    rng = random.Random(data_cfg["seed"])
    order = list(range(len(clean)))
    rng.shuffle(order)
    corrupt = clean[order]
    for i in range(len(clean)):  # never an input as its own corruption
        if torch.equal(corrupt[i], clean[i]):
            j = (i + 1) % len(clean)
            corrupt[[i, j]] = corrupt[[j, i]]
    return clean, corrupt


def circuit_components(model: TracrModel) -> set[str]:
    """The heads and MLPs of the known circuit (what SIIT aligns): its nodes less embeddings and output."""
    return {n for n in model.circuit.nodes if ".attn.hook_result[" in n or n.endswith(".hook_mlp_out")}


def circuit_siit(weights: str, meta: str, siit_cfg: dict, out_weights: str, out_meta: str) -> None:
    """Train the task's low-level model with SIIT against the compiled Tracr model."""
    high = load(weights, meta)
    # InterpBench trains on samples of the task's input distribution, repeats included: a task with
    # few distinct inputs (3^5 for histogram) is drawn n_samples times, not seen once per epoch.
    distinct = task_inputs(high, siit_cfg.get("n_samples", 2000), siit_cfg.get("seed", 0))
    draw = torch.Generator().manual_seed(siit_cfg.get("seed", 0))
    tokens = distinct[torch.randint(len(distinct), (siit_cfg.get("n_samples", 2000),), generator=draw)]
    low, low_cfg, metrics = train_siit(high.model, high.cfg, tokens, sorted(circuit_components(high)),
                                       high.categorical, siit_cfg)
    write_tensors({name: p.detach() for name, p in low.named_parameters()}, out_weights,
                  metadata={"format": FORMAT, "task": high.task})
    stored = read_json(meta)
    write_json({**stored, "config": low_cfg, "has_mlp": [True] * low_cfg["n_layers"], "kind": "siit",
                "siit": {**siit_cfg, **metrics}}, out_meta)
    print(f"{high.task}: SIIT {metrics['epochs']} epochs, accuracy {metrics['accuracy']:.4f}, IIA {metrics['iia']:.4f}, "
          f"strict accuracy {metrics['strict_accuracy']:.4f}, stopped early {metrics['stopped_early']}")


def circuit_discover(weights: str, meta: str, method: str, method_cfg: dict, data_cfg: dict, noise_floor: float,
                     sweep_name: str, out_sweep: str, out_table: str, out: str) -> None:
    """One discovery method's threshold sweep on one model, and its score against the known circuit:
    TPR/FPR per threshold (`out_table`), node and edge AUROC and the realism of the sweep's
    circuits (`out`). `method_cfg`: the method's settings with the grid of the sweep `sweep_name`
    (`circuits/sweeps.py`: `method_params`), recorded beside the scores. `noise_floor`: edge scores
    with |s| <= noise_floor * max|s| count as 0."""
    model = load(weights, meta)
    clean, corrupt = clean_and_corrupt(model, data_cfg)
    kind = "kl" if model.categorical else "mse"
    start = time.perf_counter()
    sweep = discover(method, model.model, clean, corrupt, kind, method_cfg, noise_floor)
    seconds = time.perf_counter() - start
    write_parquet(sweep, out_sweep)
    table = score_sweep(sweep, model.circuit, model.graph)
    write_parquet(table, out_table)
    patcher = EdgePatcher(model.model, clean, corrupt)
    truth = node_realism(patcher, model.circuit.nodes, kind)
    summary = {**aurocs(table), "sweep": sweep_name, "n_thresholds": int(table["threshold"].nunique()), "metric": kind,
               "true_circuit_realism": truth, "discovery_seconds": round(seconds, 3),
               "n_examples": len(clean), "method_cfg": method_cfg,
               "noise_floor": noise_floor if method in RANKS_BY_SCORE else None}
    write_json(summary, out)
    print(f"{model.task} {method}: node AUROC {summary['node_auroc']:.3f}, edge AUROC {summary['edge_auroc']:.3f} "
          f"over {summary['n_thresholds']} thresholds, {seconds:.1f} s")
