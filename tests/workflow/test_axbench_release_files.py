"""A dry run on an AxBench release of more than 500 concepts (Concept10 split over two files per part,
tests/axbench_release.py): the Snakefile parses, preflight accepts ids 500-504, and every data file of
the release is an input of the jobs that read it. A dry run only (about 15 s)."""
from __future__ import annotations

import pytest

from axbench_release import CONCEPT10, write_split_release
from runs import scheduled_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_a_dry_run_plans_every_file_of_the_release(tmp_path, unavailable):
    if CONCEPT10 is None:
        unavailable("AxBench Concept10 not found in ../shared/axbench/concept10: set INTERPFLOW_AXBENCH_DIR")
    release = write_split_release(tmp_path / "release")
    result = snakemake(tmp_path / "run", ["experiment=axbench_import", f"data_dir={release}"], "-n", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert {"train_data", "eval_data", "imbalance_pool"} <= {rule for rule, _ in scheduled_jobs(result.stdout)}
    for part, rule in (("generate/train_data", "train_data"), ("inference/latent_eval_data", "eval_data"),
                       ("inference/latent_eval_data", "imbalance_pool")):
        block = result.stdout.split(f"rule {rule}:", 1)[1].split("\n\n", 1)[0]
        assert f"{release / part}.parquet" in block and f"{release / part}_1.parquet" in block, block
