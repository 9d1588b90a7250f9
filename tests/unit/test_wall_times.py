"""The wall-time report reads Snakemake benchmark files as Snakemake writes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from interpflow.errors import InterpflowError
from interpflow.report.wall_times import per_method, per_sae, read_benchmarks, shared_stages, wall_times

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(root: Path, relative: str, *seconds_and_rss: tuple[float, float]) -> None:
    path = root / "benchmarks" / f"{relative}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t0\n" for s, rss in seconds_and_rss]
    path.write_text(HEADER + "".join(lines))


def test_seconds_add_up_per_method_and_stage(tmp_path):
    bench(tmp_path, "prepare_model/m", (70.0, 800))
    bench(tmp_path, "cache_activations/m/L9/train/s0000", (100.0, 900))
    bench(tmp_path, "cache_activations/m/L9/train/s0001", (50.0, 950))
    for shard, seconds in (("s0000", 30.0), ("s0001", 20.0)):
        bench(tmp_path, f"train/m/L9/ssv/{shard}", (seconds, 1200))
        bench(tmp_path, f"steer/m/L9/ssv/{shard}", (seconds / 10, 1000))
    bench(tmp_path, "evaluate_steering/m/L9/ssv", (1.0, 300))
    bench(tmp_path, "train/m/L9/diffmean/s0000", (2.0, 400), (4.0, 500))  # run with `repeat`: the mean
    jobs = read_benchmarks(tmp_path)
    methods = per_method(jobs).set_index("method")
    assert methods.loc["ssv", "train"] == 50.0 and methods.loc["ssv", "steer"] == 5.0
    assert methods.loc["ssv", "total_s"] == 56.0 and methods.loc["ssv", "jobs"] == 5
    assert methods.loc["ssv", "max_rss_mb"] == 1200
    assert methods.loc["diffmean", "train"] == 3.0 and methods.loc["diffmean", "max_rss_mb"] == 500
    assert list(methods.index) == ["ssv", "diffmean"]  # slowest first
    shared = shared_stages(jobs).set_index("rule")
    assert shared.loc["cache_activations", "total_s"] == 150.0 and shared.loc["cache_activations", "jobs"] == 2
    assert "train" not in shared.index


def test_a_folder_without_benchmarks_is_named_in_the_error(tmp_path):
    with pytest.raises(InterpflowError, match="no Snakemake benchmark files"):
        wall_times(str(tmp_path))


def test_seconds_per_sae_and_evaluation(tmp_path):
    bench(tmp_path, "sae/m/L9/topk", (40.0, 900))
    bench(tmp_path, "sae/m/L9/relu", (30.0, 900))
    bench(tmp_path, "saebench/m/L9/topk/core", (20.0, 800))
    bench(tmp_path, "saebench/m/L9/topk/scr", (2.0, 800))
    bench(tmp_path, "saebench/m/L9/relu/core", (25.0, 800))
    bench(tmp_path, "saebench/leaderboard", (3.0, 300))
    saes = per_sae(read_benchmarks(tmp_path)).set_index("sae")
    assert saes.loc["topk", "train_or_load"] == 40.0 and saes.loc["topk", "core"] == 20.0 and saes.loc["topk", "scr"] == 2.0
    assert saes.loc["topk", "total_s"] == 62.0 and saes.loc["relu", "total_s"] == 55.0
    assert pd.isna(saes.loc["relu", "scr"])
