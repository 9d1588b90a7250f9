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
    """Instructions from `demo` (the shipped list), a .json list (strings or objects with an
    `instruction` field), a .jsonl with that field, a .txt (one per line), or a .parquet with an
    `instruction` column, local or remote (e.g. hf://datasets/tatsu-lab/alpaca/data/<file>.parquet,
    read through huggingface_hub)."""
    if spec == "demo":
        from importlib.resources import files

        items = json.loads(files("interpflow").joinpath(DEMO_INSTRUCTIONS).read_text())
    elif spec.endswith(".parquet"):
        items = _parquet_column(spec)
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"instruction file {path} does not exist (generator.instructions)")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            items = json.loads(text)
        elif path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif path.suffix == ".txt":
            items = text.splitlines()
        else:
            raise ConfigError(f"instruction file {path} must be .json, .jsonl, .txt or .parquet (generator.instructions)")
    instructions = [str(i["instruction"] if isinstance(i, dict) else i).strip() for i in items]
    instructions = [i for i in instructions if i]
    if not instructions:
        raise ConfigError(f"{spec} holds no instructions (generator.instructions)")
    return instructions


def _parquet_column(spec: str) -> list[str]:
    try:
        frame = pd.read_parquet(spec)
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"cannot read instructions from {spec}: {exc} (generator.instructions)") from exc
    if "instruction" not in frame.columns:
        raise ConfigError(f"{spec} has no `instruction` column (columns: {', '.join(map(str, frame.columns))})")
    return frame["instruction"].tolist()


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
