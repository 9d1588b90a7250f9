"""SAEBench's published results (`saebench.published`) are the SAE leaderboard's inputs: a dry run of a
fresh saebench_tiny run (about 16 s, no job runs) plans the leaderboard with every published
*_eval_results.json as an input and on its command line, so editing one re-runs the leaderboard."""

from __future__ import annotations

import json
import re

import pytest

from runs import snakemake

pytestmark = pytest.mark.workflow

PUBLISHED = {  # <eval_type>/<release>_<sae_id>_eval_results.json -> (eval_type_id, category, metric, value)
    "core/gemma-scope-2b-pt-res_layer_12_width_16k_average_l0_22_eval_results.json": ("core", "sparsity", "l0", 22.0),
    "sparse_probing/gemma-scope-2b-pt-res_layer_12_width_16k_average_l0_22_eval_results.json":
        ("sparse_probing", "sae", "sae_top_1_test_accuracy", 0.7),
}


def test_the_published_files_are_the_leaderboards_inputs(tmp_path):
    folder = tmp_path / "published"
    for name, (eval_type, category, metric, value) in PUBLISHED.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "eval_type_id": eval_type, "eval_result_metrics": {category: {metric: value}},
            "sae_lens_release_id": "gemma-scope-2b-pt-res", "sae_lens_id": "layer_12/width_16k/average_l0_22",
            "sae_cfg_dict": {"model_name": "gemma-2-2b", "hook_layer": 12, "architecture": "jumprelu", "d_sae": 16384}}))
    result = snakemake(tmp_path, ["experiment=saebench_tiny", f"saebench.published={folder}"], "-n", "-p",
                       "saebench_leaderboard", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    block = result.stdout.split("rule saebench_leaderboard:", 1)[1]
    inputs = re.search(r"input: (.*)", block).group(1).split(", ")
    command = re.search(r"--published (.*?) >", block).group(1).split()
    files = [str(folder / name) for name in PUBLISHED]
    assert set(files) <= set(inputs), inputs
    assert command == files
