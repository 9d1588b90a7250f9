"""An AxBench release of more than 500 concepts: AxBench writes a new data file every 500 concept ids
(train_data.parquet for ids 0-499 with the shared negatives, train_data_1.parquet for 500-999, ...;
latent_eval_data likewise; one metadata.jsonl). The `dataset` source reads every file: concepts by id
across files, the imbalance pool from all of them, every file a tracked input; a concept in two files and
a missing file are refused at preflight, naming the files.

The release is Concept10 split over two files per part (tests/axbench_release.py)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from axbench_release import CONCEPT10, REPO, SPLIT_IDS, write_split_release
from interpflow.artifacts import read_parquet
from interpflow.config import compose
from interpflow.data.sources.dataset import DatasetSource
from interpflow.errors import ConfigError
from interpflow.inputs import user_inputs
from interpflow.preflight import preflight
from interpflow.stages.data import imbalance_pool


@pytest.fixture
def release(tmp_path, unavailable) -> Path:
    if CONCEPT10 is None:
        unavailable("AxBench Concept10 not found in ../shared/axbench/concept10: set INTERPFLOW_AXBENCH_DIR")
    return write_split_release(tmp_path / "concept10_split")


def _generator(folder: Path) -> dict:
    return {"name": "dataset", "path": str(folder), "format": "axbench"}


def test_every_file_of_the_release_is_read(release):
    source = DatasetSource(_generator(release))
    concepts = source.concepts()
    assert sorted(concepts["concept_id"]) == SPLIT_IDS
    train, evaluation = source.train_data(concepts), source.latent_eval_data(concepts)
    for frame in (train, evaluation):
        assert sorted(frame.loc[frame["label"] == 1, "concept_id"].unique()) == SPLIT_IDS
    original = pd.read_parquet(CONCEPT10 / "inference/latent_eval_data.parquet")
    assert len(evaluation) == len(original[original["output"].fillna("").str.strip() != ""])
    assert (train["concept_id"] == -1).sum() == 216  # the shared negatives, in the first file only


def test_the_imbalance_pool_spans_every_evaluation_file(release, tmp_path):
    whole = DatasetSource(_generator(release)).whole_latent_eval_data()
    assert set(whole["concept_id"]) == set(SPLIT_IDS)
    cfg = {"run_name": "pool", "results_dir": str(tmp_path), "generator": _generator(release),
           "detection": {"imbalance_ratio": 100, "short_pool": "nan", "pool_seed": 42}}
    imbalance_pool(cfg, [], str(tmp_path / "pool.parquet"))
    pool = read_parquet(tmp_path / "pool.parquet")
    assert len(pool) == (whole["category"] == "negative").sum()  # 1:100 asks for more than there are: all of them
    assert pool["concept_id"].min() < 500 <= pool["concept_id"].max()


def test_every_file_is_a_tracked_input(release):
    cfg = compose(REPO / "config", ["experiment=axbench_import", f"data_dir={release}"])
    assert user_inputs(cfg, "train_data")[:2] == [str(release / "generate/train_data.parquet"),
                                                  str(release / "generate/train_data_1.parquet")]
    evaluation = [str(release / "inference/latent_eval_data.parquet"), str(release / "inference/latent_eval_data_1.parquet")]
    assert user_inputs(cfg, "eval_data")[:2] == evaluation
    assert user_inputs(cfg, "imbalance_pool") == evaluation


def test_preflight_accepts_ids_from_500_on(release):
    cfg = compose(REPO / "config", ["experiment=axbench_import", f"data_dir={release}"])
    assert preflight(cfg)["concept_id"].max() == 504


def test_a_missing_file_is_named_at_preflight(release):
    (release / "inference/latent_eval_data_1.parquet").unlink()
    cfg = compose(REPO / "config", ["experiment=axbench_import", f"data_dir={release}"])
    with pytest.raises(ConfigError, match=r"concept_id 500\) has its examples in .*latent_eval_data_1\.parquet .*missing"):
        preflight(cfg)
    # a run of the first file's concepts only does not need it
    assert len(preflight(compose(REPO / "config", ["experiment=axbench_import", f"data_dir={release}",
                                                   "concepts.limit=5"]))) == 5


def test_a_concept_in_two_files_is_refused(release):
    first, second = release / "generate/train_data.parquet", release / "generate/train_data_1.parquet"
    rows = pd.read_parquet(first)
    pd.concat([pd.read_parquet(second), rows[rows["concept_id"] == 3]]).to_parquet(second, index=False)
    source = DatasetSource(_generator(release))
    with pytest.raises(ConfigError, match=r"concept_id 3 is in both .*train_data\.parquet and .*train_data_1\.parquet"):
        source.train_data(source.concepts())
