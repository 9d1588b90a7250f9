"""Concept lists: from the data source, inline in the config, a .txt/.csv file, or a Neuronpedia
explanations export; then trimmed and grouped into shards.

When the data source has concepts of its own (a ready-made data set), a listed concept meets its
data by name: it must be in the data set (case and surrounding spaces aside) and takes the data
set's id, genre and spelling. Ids are never assigned by position against a data set."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pandas as pd

from interpflow.errors import ConfigError

# ref: where the concept came from, when known (a Neuronpedia export's model/layer/latent, AxBench's
# metadata `ref` URL); empty otherwise.
CONCEPT_COLUMNS = ["concept_id", "concept", "genre", "shard", "source", "ref"]


def normalised_name(name: str) -> str:
    """The form in which concept names are compared: case and surrounding spaces do not count."""
    return str(name).strip().casefold()


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
            ref = "neuronpedia:" + "/".join(str(record.get(k, "")) for k in ("modelId", "layer", "index"))
            rows.append({"concept": description, "genre": "text", "ref": ref})
    return pd.DataFrame(rows, columns=["concept", "genre", "ref"])


def _closest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(normalised_name(name), [normalised_name(k) for k in known], n=3, cutoff=0.5)
    spelled = {normalised_name(k): k for k in known}
    return ", ".join(repr(spelled[c]) for c in close) or "none close"


def _matched_by_name(listed: pd.DataFrame, data_set: pd.DataFrame, what: str) -> pd.DataFrame:
    """The data set's rows for the listed concepts, in the list's order; every listed name must be there."""
    index = {normalised_name(name): i for i, name in enumerate(data_set["concept"])}
    missing = [name for name in listed["concept"] if normalised_name(name) not in index]
    if missing:
        known = data_set["concept"].tolist()
        details = "; ".join(f"{name!r} (closest: {_closest(name, known)})" for name in missing)
        raise ConfigError(
            f"{what} names concept(s) the data set ({data_set['source'].iloc[0]}) lacks: {details}. "
            "Spell them as the data set does (case and surrounding spaces aside), or generate data for "
            "your own concepts with generator=local or generator=openai"
        )
    rows = data_set.iloc[[index[normalised_name(name)] for name in listed["concept"]]].reset_index(drop=True)
    if "ref" in listed.columns:
        rows["ref"] = [mine if mine else theirs for mine, theirs in zip(listed["ref"].fillna(""), rows["ref"])]
    return rows


def _listed(cfg: dict) -> pd.DataFrame:
    """The user's own list (inline, file or neuronpedia), before it meets any data set."""
    spec = cfg["concepts"]
    if spec["source"] == "inline":
        frame = pd.DataFrame({"concept": spec["names"], "genre": "text"})
    elif spec["source"] == "file":
        frame = _from_file(Path(spec["path"]))
    else:
        frame = _from_neuronpedia(Path(spec["path"]))
    frame = frame.reset_index(drop=True)
    frame["concept_id"] = range(len(frame))
    frame["source"] = f"{spec['source']}:{spec.get('path') or 'config'}"
    return frame


def build_concepts(cfg: dict, source_concepts: pd.DataFrame | None) -> pd.DataFrame:
    """The experiment's concept table (CONCEPT_COLUMNS), validated and sharded.

    `source_concepts` is the data source's own concept table (None for a source that writes data
    for any concept). A listed concept then takes the data set's id, genre and spelling."""
    spec = cfg["concepts"]
    kind = spec["source"]
    if source_concepts is not None:
        source_concepts = source_concepts.copy()
        if "ref" not in source_concepts.columns:
            source_concepts["ref"] = ""
    if kind == "dataset":
        if source_concepts is None:
            raise ConfigError(
                f"concepts.source is 'dataset' but generator {cfg['generator']['name']!r} has no concept list of "
                "its own: set concepts.source to inline, file or neuronpedia"
            )
        frame = source_concepts
        if spec["names"]:
            frame = _matched_by_name(pd.DataFrame({"concept": spec["names"]}), source_concepts, "concepts.names")
    else:
        frame = _listed(cfg)
        _check_unique(frame)
        if source_concepts is not None and not frame.empty:
            frame = _matched_by_name(frame, source_concepts, f"the concept list ({frame['source'].iloc[0]})")
    if "ref" not in frame.columns:
        frame["ref"] = ""
    frame["ref"] = frame["ref"].fillna("").astype(str)
    if spec.get("limit"):
        frame = frame.head(spec["limit"])
    if frame.empty:
        raise ConfigError("the concept list is empty: check concepts.source, concepts.names and concepts.path")
    _check_unique(frame)
    frame = frame.reset_index(drop=True)
    frame["shard"] = [shard_name(i // spec["shard_size"]) for i in range(len(frame))]
    return frame[CONCEPT_COLUMNS]


def _check_unique(frame: pd.DataFrame) -> None:
    names = frame["concept"].map(normalised_name)
    duplicated = frame["concept"][names.duplicated()].tolist()
    if duplicated:
        raise ConfigError(f"the concept list has duplicates: {duplicated} (names are compared without case and surrounding spaces)")
