"""The `dataset` source: ready-made examples, from the curated demo set shipped in the package or
from a folder in AxBench's released format (read as is)."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import pandas as pd

from interpflow.data import user_files
from interpflow.data.concepts import check_not_blank, normalised_name
from interpflow.data.sources.base import LATENT_EVAL_COLUMNS, SHARED_NEGATIVE, TRAIN_COLUMNS
from interpflow.errors import ConfigError

DEMO_DIR = Path(str(files("interpflow").joinpath("data/demo")))
KEY = "generator.path"
# The columns of AxBench's released parquet files that are read.
AXBENCH_COLUMNS = ("input", "output", "category", "concept_genre", "concept_id")
AXBENCH_FILES = ("generate/train_data.parquet", "inference/latent_eval_data.parquet", "generate/metadata.jsonl")
# AxBench writes a new data file every 500 concept ids (concept_id // 500): train_data.parquet holds ids
# 0-499 and the shared negatives, train_data_1.parquet ids 500-999, and so on; latent_eval_data likewise.
# metadata.jsonl is one file for the whole release.
AXBENCH_CONCEPTS_PER_FILE = 500


def axbench_data_file(folder: Path, part: int, concept_id: int) -> Path:
    """The file of part 0 (training) or 1 (evaluation) that AxBench writes `concept_id`'s examples to."""
    first = Path(AXBENCH_FILES[part])
    index = concept_id // AXBENCH_CONCEPTS_PER_FILE
    return folder / first if index == 0 else folder / first.parent / f"{first.stem}_{index}{first.suffix}"


def axbench_data_files(folder: Path, part: int) -> list[Path]:
    """Every file of part 0 (training) or 1 (evaluation) in `folder`, in the order of the ids they hold."""
    first = Path(AXBENCH_FILES[part])
    name = re.compile(rf"{re.escape(first.stem)}(?:_(\d+))?{re.escape(first.suffix)}")
    found = [(int(m.group(1) or 0), path) for path in (folder / first.parent).glob(f"{first.stem}*{first.suffix}")
             if (m := name.fullmatch(path.name))]
    return [path for _, path in sorted(found)]


def _is_integer(value) -> bool:
    try:
        return not isinstance(value, bool) and float(value) == int(value)
    except (TypeError, ValueError, OverflowError):
        return False


def _demo_records() -> list[dict]:
    paths = sorted((DEMO_DIR / "concepts").glob("*.json"))
    if not paths:
        raise ConfigError(f"the demo data set is missing from {DEMO_DIR / 'concepts'}; reinstall interpflow")
    return [json.loads(p.read_text()) for p in paths]


class DatasetSource:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.format = cfg.get("format", "demo")
        self.path = None if cfg["path"] == "demo" else Path(cfg["path"])

    def check_ready(self) -> None:
        if self.format == "demo" and self.path is None:
            _demo_records()
            return
        if self.format == "axbench":
            if self.path is None or not self.path.is_dir():
                raise ConfigError(f"generator.path {self.cfg['path']!r} is not a folder of AxBench data")
            missing = [f for f in AXBENCH_FILES if not (self.path / f).exists()]
            if missing:
                raise ConfigError(f"{self.path} lacks AxBench files: {', '.join(missing)} (expected {', '.join(AXBENCH_FILES)})")
            return
        raise ConfigError("generator.format 'demo' reads only the shipped set: set generator.path: demo, or format: axbench")

    # --- concepts -------------------------------------------------------------------------
    def concepts(self) -> pd.DataFrame:
        self.check_ready()
        if self.format == "demo":
            rows = [{"concept_id": i, "concept": r["concept"], "genre": r["genre"], "ref": ""} for i, r in enumerate(_demo_records())]
            source = "interpflow demo set"
        else:
            rows = self._axbench_concepts()
            source = f"axbench:{self.path}"
        frame = pd.DataFrame(rows, columns=["concept_id", "concept", "genre", "ref"])
        frame["source"] = source
        self._check_unique(frame)
        return frame

    def _axbench_concepts(self) -> list[dict]:
        path = self.path / AXBENCH_FILES[2]
        shape = 'one concept object a line ({"concept_id": 0, "concept": "...", "concept_genres_map": {...}, "ref": "..."})'
        rows = []
        for number, meta in user_files.read_jsonl(path, KEY, shape):
            if not isinstance(meta, dict) or "concept" not in meta or not _is_integer(meta.get("concept_id")):
                raise user_files.problem(path, KEY, f"line {number} is not a concept object with an integer "
                                                    "`concept_id` and a `concept`", f"give {shape}")
            check_not_blank([meta["concept"]], [f"line {number}"], f"{path} (from {KEY})")
            genres = meta.get("concept_genres_map") or {}
            genre = (genres.get(meta["concept"]) or ["text"]) if isinstance(genres, dict) else ["text"]
            rows.append({"concept_id": int(meta["concept_id"]), "concept": meta["concept"], "genre": genre[0],
                         "ref": str(meta.get("ref") or "")})
        return rows

    def _check_unique(self, frame: pd.DataFrame) -> None:
        """A repeated id would hand one concept's examples to another; a repeated name makes matching by name ambiguous."""
        where = self.path / AXBENCH_FILES[2] if self.path else DEMO_DIR
        repeated_ids = sorted(set(frame.loc[frame["concept_id"].duplicated(), "concept_id"]))
        if repeated_ids:
            names = {i: frame.loc[frame["concept_id"] == i, "concept"].tolist() for i in repeated_ids}
            raise ConfigError(f"{where} gives one concept_id to several concepts: {names}; every concept needs its own id")
        names = frame["concept"].map(normalised_name)
        repeated = frame.loc[names.duplicated(keep=False)].sort_values("concept")
        if not repeated.empty:
            pairs = ", ".join(f"{r.concept!r} (id {r.concept_id})" for r in repeated.itertuples())
            raise ConfigError(f"{where} lists one concept name under several ids: {pairs}; every concept needs one id")

    # --- examples -------------------------------------------------------------------------
    def _demo_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        train, evaluation = [], []
        for concept_id, record in enumerate(_demo_records()):
            base = {"concept_id": concept_id, "genre": record["genre"]}
            for category, label in (("positive", 1), ("negative", 0)):
                train += [{**base, **ex, "label": label, "category": category} for ex in record["train"][category]]
                evaluation += [{**base, **ex, "label": label, "category": category} for ex in record["eval"][category]]
            evaluation += [
                {**base, "input": ex["input"], "output": ex["output"], "label": 0, "category": "hard_negative"}
                for ex in record["eval"]["hard_negative"]
            ]
        return pd.DataFrame(train), pd.DataFrame(evaluation)

    def _axbench_frame(self, part: int) -> pd.DataFrame:
        """Every file of the part, read whole; a concept's examples must all be in one file."""
        frames, holder = [], {}
        for path in axbench_data_files(self.path, part):
            frame = self._axbench_file(path)
            for concept_id in sorted(set(frame["concept_id"]) - {SHARED_NEGATIVE}):
                if concept_id in holder:
                    raise ConfigError(f"concept_id {concept_id} is in both {holder[concept_id]} and {path}; AxBench "
                                      f"writes each concept to one file ({AXBENCH_CONCEPTS_PER_FILE} ids a file): "
                                      "remove the copy or renumber one of the concepts")
                holder[concept_id] = path
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def _axbench_file(self, path: Path) -> pd.DataFrame:
        frame = user_files.read_parquet(path, KEY, required=AXBENCH_COLUMNS)
        ids = pd.to_numeric(frame["concept_id"], errors="coerce")
        not_integer = (ids.isna() | (ids % 1 != 0)).to_numpy()
        if not_integer.any():
            odd = int(not_integer.argmax())
            raise user_files.problem(path, KEY, f"row {odd} has the concept_id {frame['concept_id'].iloc[odd]!r}",
                                     "give every row an integer concept_id (-1 for shared negatives)")
        frame = frame.rename(columns={"concept_genre": "genre"})
        frame["category"] = frame["category"].str.replace(" ", "_")
        frame["label"] = (frame["category"] == "positive").astype(int)
        frame["concept_id"] = frame["concept_id"].astype(int)
        return frame

    def check_files_hold(self, concepts: pd.DataFrame, part: int) -> None:
        """The file AxBench writes each concept's examples to (one per 500 ids) is there."""
        if self.format != "axbench":
            return
        self.check_ready()
        for concept in concepts.itertuples():
            path = axbench_data_file(self.path, part, concept.concept_id)
            if not path.exists():
                raise ConfigError(f"concept {concept.concept!r} (concept_id {concept.concept_id}) has its examples in "
                                  f"{path} (AxBench writes one file per {AXBENCH_CONCEPTS_PER_FILE} concept ids), "
                                  "which is missing: add that file of the release, or leave the concept out "
                                  "(concepts.names, concepts.limit)")

    def _frame(self, part: int) -> pd.DataFrame:
        """Part 0 (training) or 1 (evaluation) of the data set, every file of it; each stage reads only its own part."""
        self.check_ready()
        frame = self._demo_frames()[part] if self.format == "demo" else self._axbench_frame(part)
        # Examples with no response text have no tokens to score.
        return frame[frame["output"].fillna("").str.strip() != ""]

    def train_data(self, concepts: pd.DataFrame) -> pd.DataFrame:
        self.check_files_hold(concepts, 0)
        train = self._frame(0)
        ids = set(concepts["concept_id"])
        shared = (train["concept_id"] == SHARED_NEGATIVE) & train["genre"].isin(set(concepts["genre"]))
        return train[train["concept_id"].isin(ids) | shared][TRAIN_COLUMNS].reset_index(drop=True)

    def latent_eval_data(self, concepts: pd.DataFrame) -> pd.DataFrame:
        self.check_files_hold(concepts, 1)
        evaluation = self._frame(1)
        return evaluation[evaluation["concept_id"].isin(set(concepts["concept_id"]))][LATENT_EVAL_COLUMNS].reset_index(drop=True)

    def whole_latent_eval_data(self) -> pd.DataFrame:
        """Every concept's detection evaluation examples, in the files' order, whichever concepts the run
        keeps: the imbalance pool is drawn from the whole release's negatives (every file of it)."""
        return self._frame(1)[LATENT_EVAL_COLUMNS].reset_index(drop=True)
