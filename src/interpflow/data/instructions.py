"""Steering instructions: the shipped Alpaca-style list or a user file, split per concept into
a `select` half (choose the factor) and a `test` half (report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from interpflow.errors import ConfigError

DEMO_INSTRUCTIONS = "data/demo/instructions.json"


def load_instructions(spec: str) -> list[str]:
    """`demo`, a .json list of strings, a .jsonl with an `instruction` field, or a .txt (one per line)."""
    if spec == "demo":
        from importlib.resources import files

        return json.loads(files("interpflow").joinpath(DEMO_INSTRUCTIONS).read_text())
    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"instruction file {path} does not exist (generator.instructions)")
    if path.suffix == ".json":
        return [str(x) for x in json.loads(path.read_text())]
    if path.suffix == ".jsonl":
        return [json.loads(line)["instruction"] for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    raise ConfigError(f"instruction file {path} must be .json, .jsonl or .txt")


def steer_prompts(concepts: pd.DataFrame, instructions: list[str], per_concept: int, seed: int) -> pd.DataFrame:
    """concept_id, instruction_id, instruction, split: `per_concept` instructions per concept,
    drawn reproducibly per concept; the first half is `select`, the rest `test`."""
    if per_concept > len(instructions):
        raise ConfigError(
            f"steering.instructions_per_concept is {per_concept} but only {len(instructions)} instructions are available"
        )
    rows = []
    for concept_id in concepts["concept_id"]:
        rng = np.random.default_rng([seed, int(concept_id)])
        chosen = rng.choice(len(instructions), size=per_concept, replace=False)
        for rank, index in enumerate(chosen):
            split = "select" if rank < per_concept // 2 else "test"
            rows.append({"concept_id": int(concept_id), "instruction_id": int(index), "instruction": instructions[index], "split": split})
    return pd.DataFrame(rows)
