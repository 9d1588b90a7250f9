"""Stage: paired responses for preference-trained methods (RePS): for every positive training
example of a shard, the model's own unsteered answer to the same instruction.

Artifact columns: concept_id, example_id, input, concept_output (the positive response),
plain_output (the model's greedy answer), model.
"""

from __future__ import annotations

import time

from interpflow.artifacts import read_parquet, write_parquet
from interpflow.models.formatting import prompt_ids
from interpflow.models.generation import decode, generate
from interpflow.models.loading import load_model


def pairs(model_dir: str, model_cfg: dict, pairs_cfg: dict, data: str, out: str) -> None:
    """Write (instruction, concept response, plain response) for every positive training example of a shard."""
    frame = read_parquet(data)
    positives = frame[frame["label"] == 1].reset_index(drop=True)
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    start = time.perf_counter()
    prompts = [prompt_ids(tokenizer, model_cfg, text) for text in positives["input"]]
    plain = decode(tokenizer, generate(model, tokenizer, prompts, None, pairs_cfg["max_new_tokens"], pairs_cfg["batch_size"]))
    print(f"pairs: {len(prompts)} plain answers in {time.perf_counter() - start:.1f}s")
    result = positives[["concept_id", "example_id", "input"]].assign(
        concept_output=positives["output"], plain_output=plain, model=model_cfg["name"])
    empty = result["plain_output"].str.strip() == ""
    if empty.any():  # an empty answer has no tokens to prefer; keep the pair honest by dropping it
        print(f"pairs: dropped {int(empty.sum())} empty plain answers")
    write_parquet(result[~empty], out)
