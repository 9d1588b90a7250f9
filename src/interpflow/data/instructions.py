"""Instruction lists, kept apart by use. Generated data draws its training and its evaluation
instructions from two disjoint pools of `generator.instructions`; steering draws from its own list,
`steering.instructions`, which shares no instruction with either (AxBench steers on AlpacaEval
instructions, disjoint from its training data). Each concept's steering instructions are split
into a `select` half (choose the factor) and a `test` half (report)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from interpflow.data import user_files
from interpflow.errors import ConfigError

# config key -> the list shipped in the package under the name `demo`
SHIPPED = {
    "generator.instructions": "data/demo/instructions.json",
    "steering.instructions": "data/demo/steering_instructions.json",
}
EVAL_POOL_SHARE = 3  # one instruction in three goes to the evaluation pool


def load_instructions(spec: str, key: str = "generator.instructions") -> list[str]:
    """Instructions from `demo` (the list shipped for `key`), a .json list (strings or objects with an
    `instruction` field), a .jsonl with that field, a .txt (one per line), or a .parquet with an
    `instruction` column, local or remote (e.g. hf://datasets/tatsu-lab/alpaca/data/<file>.parquet,
    read through huggingface_hub). Repeats are dropped (first kept)."""
    if spec == "demo":
        from importlib.resources import files

        items = json.loads(files("interpflow").joinpath(SHIPPED[key]).read_text())
    elif spec.endswith(".parquet"):
        items = user_files.read_parquet(spec, key, required=["instruction"])["instruction"].dropna().tolist()
    else:
        items = _read_list(Path(spec), key)
    instructions = [str(i["instruction"] if isinstance(i, dict) else i).strip() for i in items]
    instructions = list(dict.fromkeys(i for i in instructions if i))
    if not instructions:
        raise ConfigError(f"{spec} holds no instructions ({key})")
    return instructions


def instruction_pools(instructions: list[str]) -> tuple[list[str], list[str]]:
    """(training pool, evaluation pool): disjoint, each instruction placed by a hash of its text (a
    third, at least one, to evaluation), so a pool does not depend on the list's order."""
    unique = list(dict.fromkeys(instructions))
    if len(unique) < 2:
        raise ConfigError(f"generated data needs at least 2 distinct instructions (generator.instructions has {len(unique)})")
    by_hash = sorted(unique, key=lambda text: hashlib.sha256(text.encode()).hexdigest())
    evaluation = set(by_hash[: max(1, len(unique) // EVAL_POOL_SHARE)])
    return [i for i in unique if i not in evaluation], [i for i in unique if i in evaluation]


def same_instruction(text: str) -> str:
    """How instructions are compared across lists: case and white space do not make them different."""
    return " ".join(str(text).split()).casefold()


def check_steering_apart(steering: list[str], seen: list[str], where: str) -> None:
    """Steering instructions must be new to the model's training and evaluation data."""
    seen_forms = {same_instruction(t) for t in seen}
    shared = [t for t in steering if same_instruction(t) in seen_forms]
    if shared:
        listed = "; ".join(repr(t) for t in shared[:5]) + (f" and {len(shared) - 5} more" if len(shared) > 5 else "")
        raise ConfigError(
            f"{len(shared)} steering instruction(s) also appear in {where}: {listed}. Steering must use instructions "
            "the methods never trained or were evaluated on: remove them from steering.instructions (or the data)"
        )


LIST_SHAPE = 'a list of instructions (strings, or objects with an "instruction" field)'


def _read_list(path: Path, key: str) -> list:
    """Instructions from a .json list, a .jsonl file (one a line) or a .txt file (one a line)."""
    user_files.existing_file(path, key)
    if path.suffix == ".json":
        items = user_files.read_json(path, key, LIST_SHAPE)
        if not isinstance(items, list):
            raise user_files.problem(path, key, f"holds {user_files.json_kind(items)}, not a list", f"give {LIST_SHAPE}")
        places = [f"item {i}" for i in range(len(items))]
    elif path.suffix == ".jsonl":
        numbered = user_files.read_jsonl(path, key, 'an instruction: a JSON string or an object with an "instruction" field')
        places, items = [f"line {n}" for n, _ in numbered], [item for _, item in numbered]
    elif path.suffix == ".txt":
        return [line for _, line in user_files.read_lines(path, key)]
    else:
        raise user_files.problem(path, key, f"has the suffix {path.suffix or '(none)'!r}",
                                 "give a .json, .jsonl, .txt or .parquet file")
    odd = next((place for place, item in zip(places, items)
                if not (isinstance(item, (str, int, float)) and not isinstance(item, bool)
                        or isinstance(item, dict) and "instruction" in item)), None)
    if odd is not None:
        raise user_files.problem(path, key, f"{odd} is neither text nor an object with an `instruction` field",
                                 f"give {LIST_SHAPE}")
    return items


def steer_prompts(concepts: pd.DataFrame, instructions: list[str], per_concept: int, seed: int) -> pd.DataFrame:
    """concept_id, instruction_id, instruction, split: `per_concept` instructions per concept,
    drawn reproducibly per concept; the first half is `select`, the rest `test`."""
    if per_concept > len(instructions):
        raise ConfigError(
            f"steering.instructions_per_concept is {per_concept} but steering.instructions has only {len(instructions)}"
        )
    rows = []
    for concept_id in concepts["concept_id"]:
        rng = np.random.default_rng([seed, int(concept_id)])
        chosen = rng.choice(len(instructions), size=per_concept, replace=False)
        for rank, index in enumerate(chosen):
            split = "select" if rank < per_concept // 2 else "test"
            rows.append({"concept_id": int(concept_id), "instruction_id": int(index), "instruction": instructions[index], "split": split})
    return pd.DataFrame(rows)
