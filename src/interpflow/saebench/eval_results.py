"""The run's SAEBench JSON laid out as SAEBench's own tools read it:

    saebench/eval_results/<evaluation>/<release>_<sae_id>_eval_results.json

one folder per evaluation (core, sparse_probing, scr, tpp, absorption, autointerp, ravel,
unlearning: the folder names of SAEBench's runs, which `sae_bench_utils/graphing_utils.py` tells
apart by path) and one file per SAE, named as SAEBench's `get_results_filepath` names it ('/' in
the name becomes '_'). A pretrained SAE keeps its sae_lens release and id; an SAE trained here is
release `interpflow`, id `<model>_L<layer>_<sae>` (one name per model and layer), and its copy
says so in `sae_lens_release_id` / `sae_lens_id`, so file name and contents agree.

A result without its scores (a metric null: e.g. absorption when the model has too few reliable
first-letter probes, its `eval_result_unstructured` says why) is left out: SAEBench's schemas
require numbers there, and its tools would have nothing to plot.
"""

from __future__ import annotations

import re
from pathlib import Path

from interpflow.artifacts import read_json, write_json
from interpflow.errors import ConfigError

# where the workflow writes each evaluation of each SAE
RESULT_PATH = re.compile(r".*/saebench/(?P<model>[^/]+)/L(?P<layer>\d+)/(?P<sae>[^/]+)/(?P<eval>[^/]+)\.json$")
TRAINED_RELEASE = "interpflow"


def saebench_name(result: dict, model: str, layer: int, sae: str) -> tuple[str, str]:
    """(release, sae_id) of one SAE's result, as SAEBench names its files."""
    config = result.get("sae_cfg_dict") or {}
    if config.get("source") == "pretrained" and config.get("release") and config.get("sae_id"):
        return str(config["release"]), str(config["sae_id"])
    return TRAINED_RELEASE, f"{model}_L{layer}_{sae}"


def scored(result: dict) -> bool:
    """Every metric of `eval_result_metrics` has a value."""
    return all(value is not None for group in result["eval_result_metrics"].values() for value in group.values())


def saebench_eval_results(results: list[str], out: str) -> None:
    """Copy every evaluation JSON in `results` (results/<run>/saebench/<model>/L<layer>/<sae>/<eval>.json)
    to `out`/<eval>/<release>_<sae_id>_eval_results.json, the layout SAEBench's graphing code reads."""
    written: dict[Path, str] = {}
    unscored = []
    for path in results:
        match = RESULT_PATH.match(str(Path(path).resolve()))
        if match is None:
            raise ConfigError(f"{path} is not results/<run>/saebench/<model>/L<layer>/<sae>/<eval>.json")
        result = read_json(path)
        if not scored(result):
            unscored.append(path)
            continue
        release, sae_id = saebench_name(result, match["model"], int(match["layer"]), match["sae"])
        target = Path(out) / match["eval"] / f"{release}_{sae_id}_eval_results.json".replace("/", "_")
        if target in written:
            raise ConfigError(f"{path} and {written[target]} would both be {target}: two SAEs of the run are the same "
                              "pretrained release and sae_id; keep one of them in `saes`")
        written[target] = path
        write_json({**result, "sae_lens_release_id": release, "sae_lens_id": sae_id}, target)
    Path(out).mkdir(parents=True, exist_ok=True)
    print(f"{len(written)} SAEBench result files in {out}")
    if unscored:
        print(f"left out, a metric is null (not evaluated; see each file's eval_result_unstructured): {', '.join(unscored)}")
