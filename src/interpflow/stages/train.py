"""Stage: train one method for every concept of a shard.

What is read depends on the method's `needs`: cached activations, the examples' text, or the
model itself (loaded here). Methods trained per concept checkpoint each concept under
`checkpoints`, so a killed job resumes and never trains a finished concept again.

Artifact: <out>.safetensors with the method's tensors (first dim = concept row, unless the method
trains across concepts) and `concept_ids`; <out_cfg> (cfg.json) with the method config, the
concepts, and which were trained in this job versus resumed.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import torch

from interpflow.artifacts import read_tensor_metadata, read_parquet, read_tensors, write_json, write_tensors
from interpflow.fingerprint import code_fingerprint
from interpflow.methods import build_method
from interpflow.methods.data import ModelHandle, TrainingData, checkpoint_key
from interpflow.models.architectures import check_layer
from interpflow.models.loading import load_model


def _digest(*paths: str | None) -> str:
    sha = hashlib.sha256()
    for path in paths:
        if path:
            sha.update(Path(path).read_bytes())
    return sha.hexdigest()


def model_handle(model_dir: str, model_cfg: dict, layer: int) -> ModelHandle:
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    check_layer(model, layer)
    return ModelHandle(model, tokenizer, model_cfg, layer)


def checkpoint_key_for(method, method_cfg: dict, model_cfg: dict | None, layer: int | None, seed: int, inputs: str) -> str:
    """A checkpoint is reused only if it was trained from the same config, model, layer, data and code
    (the method's module and everything of interpflow it imports)."""
    return checkpoint_key(method_cfg, model_cfg, layer, seed, inputs, code_fingerprint(type(method).__module__, __name__))


def train(method_cfg: dict, concepts: str, shard: str, data: str, out: str, out_cfg: str,
          acts: str | None = None, index: str | None = None, model_dir: str | None = None,
          model_cfg: dict | None = None, layer: int | None = None, pairs: str | None = None,
          sae: str | None = None, checkpoints: str | None = None, seed: int = 0) -> None:
    """Train one method for every concept of a shard."""
    method = build_method(method_cfg)
    shard_concepts = read_parquet(concepts).query("shard == @shard")
    selected = method.selected_concepts([int(c) for c in shard_concepts["concept_id"]])
    shard_concepts = shard_concepts[shard_concepts["concept_id"].isin(selected)]
    key = checkpoint_key_for(method, method_cfg, model_cfg, layer, seed, _digest(data, acts, pairs, sae))
    training = TrainingData(
        concepts=shard_concepts, examples=read_parquet(data), seed=seed,
        checkpoint_dir=Path(checkpoints) if checkpoints else None, checkpoint_key=key,
    )
    if acts is not None:
        training.acts, training.index = read_tensors(acts)["acts"], read_parquet(index)
    if method.needs == "model":
        training.model = model_handle(model_dir, model_cfg, layer)
    if pairs is not None:
        training.pairs = read_parquet(pairs)
    if sae is not None:
        training.sae = read_tensors(sae)
        training.sae_neuronpedia = read_tensor_metadata(sae).get("neuronpedia", "")

    start = time.perf_counter()
    tensors = method.train(training)
    seconds = time.perf_counter() - start
    tensors["concept_ids"] = torch.tensor(shard_concepts["concept_id"].to_numpy())
    write_tensors(tensors, out, metadata={"method": method_cfg["name"]})
    write_json({"method": method_cfg, "shard": shard, "concept_ids": shard_concepts["concept_id"].tolist(),
                "trained_in_this_job": training.trained, "train_seconds": round(seconds, 3)}, out_cfg)
    print(f"train: {method_cfg['name']} shard {shard}: {len(shard_concepts)} concepts "
          f"({len(training.trained)} trained, the rest from checkpoints) in {seconds:.1f}s")
    if checkpoints:  # the artifact now holds every concept
        shutil.rmtree(checkpoints, ignore_errors=True)
