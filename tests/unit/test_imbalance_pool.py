"""The imbalance pool (stages/data.py): drawn as AxBench draws it (ratio x the positives per concept,
DataFrame.sample with the seed) from a data set's whole evaluation file or from the run's generated
evaluation data, refused under detection.short_pool = stop when too short."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interpflow.artifacts import read_parquet, write_parquet
from interpflow.data.sources.dataset import DatasetSource
from interpflow.errors import ConfigError
from interpflow.stages.data import draw_pool, imbalance_pool

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = [os.environ.get("INTERPFLOW_AXBENCH_DIR", ""), REPO.parent / "shared/axbench/concept10", "/work/shared/axbench/concept10"]
CONCEPT10 = next((Path(c) for c in CANDIDATES if c and (Path(c) / "inference/latent_eval_data.parquet").exists()), None)
DEMO = {"name": "dataset", "path": "demo", "format": "demo"}


def _cfg(tmp_path: Path, generator: dict, ratio: int, short: str = "nan", seed: int = 42) -> dict:
    return {"run_name": "pool", "results_dir": str(tmp_path), "generator": generator,
            "detection": {"imbalance_ratio": ratio, "short_pool": short, "pool_seed": seed}}


def _pool(tmp_path: Path, cfg: dict, latent: list[str] | None = None) -> pd.DataFrame:
    out = tmp_path / "pool.parquet"
    imbalance_pool(cfg, latent or [], str(out))
    return read_parquet(out)


def test_the_draw_is_the_head_of_numpy_randomstate_permutation():
    """pandas' sample without replacement: the first n of RandomState(seed).permutation, the frame's row order kept."""
    negatives = pd.DataFrame({"input": [f"text {i}" for i in range(50)]})
    drawn = draw_pool(negatives, 20, seed=42)
    assert drawn.index.tolist() == np.random.RandomState(42).permutation(50)[:20].tolist()
    assert draw_pool(negatives, 500, seed=42).index.tolist() == np.random.RandomState(42).permutation(50).tolist()


def test_a_data_set_pool_comes_from_the_whole_file(tmp_path):
    """The demo set: 8 concepts of 18 positives and 18 negatives; a run of 3 concepts still draws from all 144
    negatives, 2 x 18 of them at ratio 2, in the seed's order."""
    pool = _pool(tmp_path, _cfg(tmp_path, DEMO, ratio=2))
    whole = DatasetSource(DEMO).whole_latent_eval_data()
    negatives = whole[whole["category"] == "negative"].reset_index(drop=True)
    assert len(negatives) == 144 and len(pool) == 36
    assert pool["example_id"].tolist() == list(range(36)) and (pool["category"] == "negative").all()
    expected = negatives.iloc[np.random.RandomState(42).permutation(144)[:36]]
    assert pool["input"].tolist() == expected["input"].tolist()
    assert pool["concept_id"].nunique() > 3  # concepts the run may not keep


def test_a_short_pool_is_written_whole_or_stops_the_run(tmp_path):
    """1:100 asks for 1,800 demo negatives; 144 exist: written whole (nan, score), refused (stop)."""
    assert len(_pool(tmp_path, _cfg(tmp_path, DEMO, ratio=100))) == 144
    with pytest.raises(ConfigError, match=r"imbalance_ratio=100 needs 1800 .*holds 144 \(1:8\.0\).*short_pool"):
        _pool(tmp_path, _cfg(tmp_path, DEMO, ratio=100, short="stop"))
    assert len(_pool(tmp_path, _cfg(tmp_path, DEMO, ratio=8, short="stop"))) == 144  # 8 x 18 exactly


def test_a_generated_pool_comes_from_every_shard(tmp_path):
    """Generated data: the run's own evaluation negatives, shard after shard, drawn the same way."""
    shards = []
    for shard, concepts in (("s0000", (0, 1)), ("s0001", (2,))):
        rows = [{"concept_id": c, "input": f"{category} {c} {i}", "output": "o", "label": int(category == "positive"),
                 "category": category, "genre": "text"}
                for c in concepts for category in ("positive", "negative") for i in range(4)]
        frame = pd.DataFrame(rows)
        frame.insert(0, "example_id", range(len(frame)))
        write_parquet(frame, tmp_path / f"{shard}.parquet")
        shards.append(str(tmp_path / f"{shard}.parquet"))
    cfg = _cfg(tmp_path, {"name": "local"}, ratio=2, seed=0)
    pool = _pool(tmp_path, cfg, shards)
    negatives = [f"negative {c} {i}" for c in (0, 1, 2) for i in range(4)]
    assert pool["input"].tolist() == [negatives[i] for i in np.random.RandomState(0).permutation(12)[:8]]
    with pytest.raises(ConfigError, match="this run's evaluation data holds 12"):
        _pool(tmp_path, {**cfg, "detection": {"imbalance_ratio": 4, "short_pool": "stop", "pool_seed": 0}}, shards)


@pytest.mark.skipif(CONCEPT10 is None, reason="AxBench Concept10 not found: set INTERPFLOW_AXBENCH_DIR")
def test_concept10_reaches_one_to_ten(tmp_path):
    """Concept10 holds 360 negatives for 36 positives per concept: AxBench's 3,600 cannot be drawn (its
    pandas sample would raise); 1:10 can, and is exactly its 360 in the seed's order."""
    generator = {"name": "dataset", "path": str(CONCEPT10), "format": "axbench"}
    with pytest.raises(ConfigError, match=r"needs 3600 .*holds 360 \(1:10\.0\)"):
        _pool(tmp_path, _cfg(tmp_path, generator, ratio=100, short="stop"))
    pool = _pool(tmp_path, _cfg(tmp_path, generator, ratio=10, short="stop"))
    raw = pd.read_parquet(CONCEPT10 / "inference/latent_eval_data.parquet")
    raw_negatives = raw[raw["category"] == "negative"]
    assert pool["input"].tolist() == raw_negatives.sample(360, random_state=42)["input"].tolist()


def test_the_pool_job_tracks_the_data_sets_evaluation_file_only(tmp_path):
    """Editing an AxBench release's evaluation file re-runs the pool job; its training data or the steering
    instructions do not (the demo set, shipped, enters the job's code fingerprint instead)."""
    from interpflow.inputs import package_data, user_inputs

    release = {"generator": {"name": "dataset", "format": "axbench", "path": str(tmp_path)},
               "steering": {"instructions": str(tmp_path / "steering.txt")}, "concepts": {"source": "dataset"}}
    assert user_inputs(release, "imbalance_pool") == [str(tmp_path / "inference/latent_eval_data.parquet")]
    demo = {**release, "generator": DEMO}
    assert user_inputs(demo, "imbalance_pool") == [] and package_data(demo, "imbalance_pool") != ""
