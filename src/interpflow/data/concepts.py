"""Concept lists: from the data source, inline in the config, a .txt/.csv file, or a Neuronpedia
explanations export; then trimmed and grouped into shards.

When the data source has concepts of its own (a ready-made data set), a listed concept meets its
data by name: it must be in the data set (case and surrounding spaces aside) and takes the data
set's id, genre and spelling. Ids are never assigned by position against a data set."""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd

from interpflow.data import user_files
from interpflow.errors import ConfigError

# ref: where the concept came from, when known (a Neuronpedia export's model/layer/latent, AxBench's
# metadata `ref` URL); empty otherwise.
CONCEPT_COLUMNS = ["concept_id", "concept", "genre", "shard", "source", "ref"]


def normalised_name(name: str) -> str:
    """The form in which concept names are compared: case and surrounding spaces do not count."""
    return str(name).strip().casefold()


def shard_name(index: int) -> str:
    return f"s{index:04d}"


def check_not_blank(names: list, places: list[str], source: str) -> None:
    """Every concept has a name: a blank cell or item is refused (it would become a concept called 'nan' or '')."""
    blank = [place for name, place in zip(names, places) if pd.isna(name) or not str(name).strip()]
    if blank:
        listed = ", ".join(blank[:5]) + (f" and {len(blank) - 5} more" if len(blank) > 5 else "")
        raise ConfigError(f"{source}: blank concept at {listed}; every concept needs a name: fill it in or "
                          "delete the entry")


def _from_file(path: Path) -> pd.DataFrame:
    key = "concepts.path"
    user_files.existing_file(path, key)
    if path.suffix == ".csv":
        frame = user_files.read_csv(path, key, required=["concept"])
        check_not_blank(frame["concept"].tolist(), [f"line {line}" for line in frame.index], f"{path} (from {key})")
        genre = frame["genre"].str.strip() if "genre" in frame.columns else pd.Series("", index=frame.index)
        frame = pd.DataFrame({"concept": frame["concept"], "genre": genre.replace("", "text")})
        return frame.reset_index(drop=True)
    if path.suffix == ".txt":
        # One concept a line; blank lines are spacing, not concepts.
        return pd.DataFrame({"concept": [line for _, line in user_files.read_lines(path, key)], "genre": "text"})
    raise user_files.problem(path, key, f"has the suffix {path.suffix or '(none)'!r}",
                             "give a .txt (one concept a line) or a .csv (a `concept` column, optional `genre`)")


NEURONPEDIA_SHAPE = "a JSON list of explanations ({\"modelId\", \"layer\", \"index\", \"description\"}), as Neuronpedia exports them"


def _from_neuronpedia(path: Path) -> pd.DataFrame:
    """A Neuronpedia explanations export: a JSON list of {modelId, layer, index, description, ...}
    (or an object holding that list under `explanations`)."""
    key = "concepts.path"
    records = user_files.read_json(path, key, NEURONPEDIA_SHAPE)
    if isinstance(records, dict) and isinstance(records.get("explanations"), list):
        records = records["explanations"]
    if not isinstance(records, list):
        raise user_files.problem(path, key, f"holds {user_files.json_kind(records)}, not a list of explanations",
                                 f"give {NEURONPEDIA_SHAPE}")
    odd = next((i for i, r in enumerate(records) if not (isinstance(r, dict) and "description" in r)), None)
    if odd is not None:
        raise user_files.problem(path, key, f"item {odd} is not an explanation (an object with a `description`)",
                                 f"give {NEURONPEDIA_SHAPE}")
    check_not_blank([r["description"] for r in records], [f"item {i} (`description`)" for i in range(len(records))],
                    f"{path} (from {key})")
    rows = [{"concept": str(r["description"]).strip(), "genre": "text",
             "ref": "neuronpedia:" + "/".join(str(r.get(k, "")) for k in ("modelId", "layer", "index"))} for r in records]
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


def check_inline_names(names: list) -> None:
    check_not_blank(names, [f"item {i}" for i in range(len(names))], "concepts.names")


def _listed(cfg: dict) -> pd.DataFrame:
    """The user's own list (inline, file or neuronpedia), before it meets any data set."""
    spec = cfg["concepts"]
    if spec["source"] == "inline":
        check_inline_names(spec["names"])
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
            check_inline_names(spec["names"])
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
