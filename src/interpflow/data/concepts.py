"""Concept lists: from the data source, inline in the config, a .txt/.csv file, or a Neuronpedia
explanations export; then trimmed and grouped into shards."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from interpflow.errors import ConfigError

CONCEPT_COLUMNS = ["concept_id", "concept", "genre", "shard", "source"]


def shard_name(index: int) -> str:
    return f"s{index:04d}"


def _from_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError(f"concept file {path} does not exist (concepts.path)")
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        if "concept" not in frame.columns:
            raise ConfigError(f"{path} has no `concept` column (columns: {', '.join(frame.columns)})")
        if "genre" not in frame.columns:
            frame["genre"] = "text"
        return frame[["concept", "genre"]]
    if path.suffix == ".txt":
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return pd.DataFrame({"concept": names, "genre": "text"})
    raise ConfigError(f"concept file {path} must be .txt (one concept per line) or .csv (a `concept` column)")


def _from_neuronpedia(path: Path) -> pd.DataFrame:
    """A Neuronpedia explanations export: a JSON list of {modelId, layer, index, description, ...}."""
    if not path.exists():
        raise ConfigError(f"Neuronpedia export {path} does not exist (concepts.path)")
    records = json.loads(path.read_text())
    if isinstance(records, dict):
        records = records.get("explanations", [])
    rows = []
    for record in records:
        description = (record.get("description") or "").strip()
        if description:
            ref = "/".join(str(record.get(k, "")) for k in ("modelId", "layer", "index"))
            rows.append({"concept": description, "genre": "text", "ref": ref})
    return pd.DataFrame(rows, columns=["concept", "genre", "ref"])


def build_concepts(cfg: dict, source_concepts: pd.DataFrame | None) -> pd.DataFrame:
    """The experiment's concept table (CONCEPT_COLUMNS), validated and sharded."""
    spec = cfg["concepts"]
    kind = spec["source"]
    if kind == "dataset":
        if source_concepts is None:
            raise ConfigError(
                f"concepts.source is 'dataset' but generator {cfg['generator']['name']!r} has no concept list of "
                "its own: set concepts.source to inline, file or neuronpedia"
            )
        frame = source_concepts.copy()
        if spec["names"]:
            unknown = sorted(set(spec["names"]) - set(frame["concept"]))
            if unknown:
                raise ConfigError(f"concepts.names lists concepts the data set lacks: {unknown}; it has {sorted(frame['concept'])}")
            frame = frame[frame["concept"].isin(spec["names"])]
    else:
        if kind == "inline":
            frame = pd.DataFrame({"concept": spec["names"], "genre": "text"})
        elif kind == "file":
            frame = _from_file(Path(spec["path"]))
        else:
            frame = _from_neuronpedia(Path(spec["path"]))
        frame = frame.reset_index(drop=True)
        frame["concept_id"] = range(len(frame))
        frame["source"] = f"{kind}:{spec.get('path') or 'config'}"
    if spec.get("limit"):
        frame = frame.head(spec["limit"])
    if frame.empty:
        raise ConfigError("the concept list is empty: check concepts.source, concepts.names and concepts.path")
    duplicated = frame["concept"][frame["concept"].duplicated()].tolist()
    if duplicated:
        raise ConfigError(f"the concept list has duplicates: {duplicated}")
    frame = frame.reset_index(drop=True)
    frame["shard"] = [shard_name(i // spec["shard_size"]) for i in range(len(frame))]
    return frame[CONCEPT_COLUMNS]
