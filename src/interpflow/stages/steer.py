"""Stage: steered generation for every concept of a shard, every factor and every steering prompt.

Each method steers its own way inside a context around generation (methods/base.py): vector
methods add strength * w after block L at every position (or clamp their latent to strength),
where strength = factor * a_c for methods that detect (a_c: the concept's largest latent on its
own evaluation examples, so factors mean the same across methods) and = factor for trained
vectors, whose own magnitude is the unit. Methods without a factor (prompting, LoRA, ...) make one
generation per prompt.
Each generation's perplexity under the unsteered model (given the plain prompt) is recorded.

Artifact columns: concept_id, concept, instruction_id, instruction, split, factor, strength,
generation, perplexity.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch

from interpflow.artifacts import read_parquet, read_tensors, write_parquet
from interpflow.methods import build_method
from interpflow.models.architectures import check_layer
from interpflow.models.formatting import prompt_ids
from interpflow.models.generation import decode, generate, perplexity
from interpflow.models.loading import load_model
from interpflow.models.shared_decoding import generate_shared
from interpflow.models.shared_decoding import supports as supports_sharing


def max_activations(latent: str, fallback: float) -> dict[int, float]:
    """a_c: each concept's largest example score on its own evaluation examples; where that is not
    positive, `fallback` (AxBench's rule: a_c = max if max > 0 else 50)."""
    scores = read_parquet(latent)
    own = scores[~scores["in_pool"] & (scores["concept_id"] == scores["example_concept_id"])]
    largest = own.groupby("concept_id")["max_score"].max()
    return largest.where(largest > 0, fallback).to_dict()


def steering_plan(method, concepts: pd.DataFrame, prompts: pd.DataFrame, factors: list[float]) -> pd.DataFrame:
    """One row per generation to make: the prompt rows crossed with the method's factors (or no factor)."""
    plan = prompts.merge(concepts[["concept_id", "concept"]], on="concept_id")
    if not method.uses_factor:
        return plan.assign(factor=math.nan)
    return plan.merge(pd.DataFrame({"factor": method.factors(factors)}), how="cross")


def steer(method_cfg: dict, model_dir: str, model_cfg: dict, layer: int, steer_cfg: dict, concepts: str, shard: str,
          prompts: str, out: str, artifact: str | None = None, latent: str | None = None) -> None:
    """Generate steered answers for every concept of a shard, factor and steering prompt."""
    method = build_method(method_cfg)
    shard_concepts = read_parquet(concepts).query("shard == @shard")
    tensors: dict[str, torch.Tensor] = {}
    if artifact is not None:
        tensors = read_tensors(artifact)
        trained = tensors.pop("concept_ids").tolist()
        shard_concepts = shard_concepts[shard_concepts["concept_id"].isin(trained)]  # a method may train a subset
    plan = steering_plan(method, shard_concepts, read_parquet(prompts), steer_cfg["factors"])
    if artifact is not None:
        plan["concept_row"] = plan["concept_id"].map({c: row for row, c in enumerate(trained)})
    if not method.uses_factor:
        plan["strength"] = math.nan
    elif latent is not None:  # unit directions: factors are in units of the concept's max latent a_c
        a_c = max_activations(latent, steer_cfg["nonpositive_a_c"])
        plan["strength"] = [f * a_c[c] for f, c in zip(plan["factor"], plan["concept_id"])]
    else:  # a trained vector's own magnitude is the unit
        plan["strength"] = plan["factor"]

    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    check_layer(model, layer)
    plain_prompts = [prompt_ids(tokenizer, model_cfg, text) for text in plan["instruction"]]
    written = plan["steering_prompt"] if "steering_prompt" in plan else [""] * len(plan)
    steered_prompts = [prompt_ids(tokenizer, model_cfg, method.steering_instruction(c, i, w))
                       for c, i, w in zip(plan["concept"], plan["instruction"], written)]

    def intervene(rows: list[int]):
        return method.steering(tensors, model, layer, plan.iloc[rows])

    start = time.perf_counter()
    longest = max(map(len, plain_prompts), default=0) + steer_cfg["max_new_tokens"]
    if method.edits_after_layer and steered_prompts == plain_prompts and supports_sharing(model, longest):
        generated, plan["perplexity"] = generate_shared(
            model, tokenizer, plain_prompts, intervene, layer, steer_cfg["max_new_tokens"], steer_cfg["batch_size"],
            steer_cfg["temperature"], seed=0, steering_keys=method.steering_keys(plan))
    else:
        groups = plan[method.batch_key].tolist() if method.batch_key else None
        generated = generate(model, tokenizer, steered_prompts, intervene, steer_cfg["max_new_tokens"],
                             steer_cfg["batch_size"], steer_cfg["temperature"], seed=0, groups=groups)
        plan["perplexity"] = perplexity(model, plain_prompts, generated, steer_cfg["batch_size"], tokenizer.pad_token_id)
    plan["generation"] = decode(tokenizer, generated)
    print(f"steer: {len(plan)} generations in {time.perf_counter() - start:.1f}s")
    columns = ["concept_id", "concept", "instruction_id", "instruction", "split", "factor", "strength", "generation", "perplexity"]
    write_parquet(plan[columns], out)
