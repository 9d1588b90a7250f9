"""A multi-file AxBench release for tests, written from Concept10 (../shared/axbench/concept10, or the
folder named by INTERPFLOW_AXBENCH_DIR) in AxBench's layout: AxBench writes a new data file every 500
concept ids, so concepts 0-4 (and the shared negatives, id -1) stay in train_data.parquet and
latent_eval_data.parquet, and concepts 5-9 move to train_data_1.parquet and latent_eval_data_1.parquet
as ids 500-504. One metadata.jsonl holds all ten."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = [os.environ.get("INTERPFLOW_AXBENCH_DIR", ""), REPO.parent / "shared/axbench/concept10", "/work/shared/axbench/concept10"]
CONCEPT10 = next((Path(c) for c in CANDIDATES if c and (Path(c) / "generate/metadata.jsonl").exists()), None)
SPLIT_IDS = [0, 1, 2, 3, 4, 500, 501, 502, 503, 504]


def renumbered(concept_id: int) -> int:
    return concept_id + 495 if concept_id >= 5 else concept_id


def _split(frame: pd.DataFrame, first: Path, second: Path) -> None:
    frame = frame.assign(concept_id=frame["concept_id"].map(renumbered))
    frame[frame["concept_id"] < 500].to_parquet(first, index=False)
    frame[frame["concept_id"] >= 500].to_parquet(second, index=False)


def write_split_release(folder: Path) -> Path:
    """Concept10 split over two files per part, in `folder` (needs CONCEPT10)."""
    (folder / "generate").mkdir(parents=True)
    (folder / "inference").mkdir()
    lines = [json.loads(line) for line in (CONCEPT10 / "generate/metadata.jsonl").read_text().splitlines() if line.strip()]
    (folder / "generate/metadata.jsonl").write_text(
        "".join(json.dumps({**meta, "concept_id": renumbered(meta["concept_id"])}) + "\n" for meta in lines))
    for part in ("generate/train_data", "inference/latent_eval_data"):
        _split(pd.read_parquet(CONCEPT10 / f"{part}.parquet"), folder / f"{part}.parquet", folder / f"{part}_1.parquet")
    return folder
