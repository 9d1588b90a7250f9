"""A task compiled to a TransformerLens model with its ground-truth circuit: built from the RASP
program (`compile_task`), written as safetensors + JSON (`save`), and read back offline (`load`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from interpflow.artifacts import read_json, read_tensors, write_json, write_tensors
from interpflow.circuits.graph import Circuit, ModelGraph
from interpflow.circuits.ground_truth import ground_truth
from interpflow.circuits.tracr_compile import BOS, PAD, Compiled, compile_program
from interpflow.circuits.tracr_convert import Codec, build_model, codec_of, config_kwargs, residual_labels, state_dict

FORMAT = "interpflow-tracr-1"


@dataclass
class TracrModel:
    task: str
    model: HookedTransformer
    cfg: dict
    """The HookedTransformerConfig arguments `model` was built from."""
    codec: Codec
    has_mlp: tuple[bool, ...]
    circuit: Circuit
    correspondence: dict[str, list[str]]
    vocab: tuple
    max_seq_len: int
    residual_labels: list[str]
    compiled: Compiled | None = None
    """tracr's graph and craft model; None for a model read back from disk."""

    @property
    def categorical(self) -> bool:
        return self.codec.categorical

    @property
    def graph(self) -> ModelGraph:
        return ModelGraph.of(self.cfg["n_layers"], self.cfg["n_heads"], self.has_mlp)

    def run(self, inputs: list[list]) -> list[list]:
        """The model's decoded outputs (positions after BOS) on equally long inputs."""
        with torch.no_grad():
            return self.codec.decode(self.model(self.codec.encode(inputs)))


def compile_task(name: str) -> TracrModel:
    compiled = compile_program(name)
    cfg = config_kwargs(compiled)
    truth = ground_truth(compiled)
    return TracrModel(
        task=compiled.task.name, model=build_model(cfg, state_dict(compiled, cfg)), cfg=cfg,
        codec=codec_of(compiled), has_mlp=compiled.has_mlp, circuit=truth.circuit,
        correspondence=truth.correspondence, vocab=compiled.task.vocab, max_seq_len=compiled.task.max_seq_len,
        residual_labels=residual_labels(compiled), compiled=compiled)


def save(tracr_model: TracrModel, weights_path: str | Path, json_path: str | Path) -> None:
    m = tracr_model
    tensors = {name: p.detach() for name, p in m.model.named_parameters()}
    write_tensors(tensors, weights_path, metadata={"format": FORMAT, "task": m.task})
    write_json({
        "format": FORMAT,
        "task": m.task,
        "config": m.cfg,
        "vocab": list(m.vocab),
        "max_seq_len": m.max_seq_len,
        "output_kind": "categorical" if m.categorical else "numerical",
        "bos": BOS,
        "pad": PAD,
        "input_tokens": list(m.codec.input_tokens),
        "output_values": None if m.codec.output_values is None else list(m.codec.output_values),
        "has_mlp": list(m.has_mlp),
        "residual_labels": m.residual_labels,
        "circuit": {"nodes": sorted(m.circuit.nodes), "edges": sorted(list(e) for e in m.circuit.edges)},
        "correspondence": m.correspondence,
    }, json_path)


def load(weights_path: str | Path, json_path: str | Path) -> TracrModel:
    meta = read_json(json_path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a {FORMAT} file (format {meta.get('format')!r})")
    if (meta["bos"], meta["pad"]) != (BOS, PAD):
        raise ValueError(f"{json_path}: written with BOS/PAD {meta['bos']!r}/{meta['pad']!r}, this code uses {BOS!r}/{PAD!r}")
    values = meta["output_values"]
    circuit = meta["circuit"]
    return TracrModel(
        task=meta["task"], model=build_model(meta["config"], read_tensors(weights_path)), cfg=meta["config"],
        codec=Codec(tuple(meta["input_tokens"]), None if values is None else tuple(values)),
        has_mlp=tuple(meta["has_mlp"]),
        circuit=Circuit(frozenset(circuit["nodes"]), frozenset(tuple(e) for e in circuit["edges"])),
        correspondence=meta["correspondence"], vocab=tuple(meta["vocab"]), max_seq_len=meta["max_seq_len"],
        residual_labels=meta["residual_labels"])
