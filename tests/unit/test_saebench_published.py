"""SAEBench's published results beside the run's SAEs (`saebench.published`): a fixture folder in
SAEBench's layout and format (every field its output schemas require, checked against them), read
into the SAE leaderboard as rows of their own (`source` published) with the values written, drawn
with their own markers, tracked as the leaderboard's inputs, and a bad folder or file stopped at
parse time with a message naming the key or the file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from interpflow.config import compose, validate
from interpflow.errors import ConfigError
from interpflow.inputs import user_inputs
from interpflow.preflight import preflight
from interpflow.saebench.leaderboard import _scatter, saebench_leaderboard
from interpflow.saebench.published import check_published_files

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "tests" / "conformance" / "fixtures" / "saebench_schemas"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# release, sae_id, architecture, d_sae, {eval folder: {(category, metric): value}}
PUBLISHED = [
    ("gemma-scope-2b-pt-res", "layer_12/width_16k/average_l0_22", "jumprelu", 16384,
     {"core": {("sparsity", "l0"): 22.0, ("model_performance_preservation", "ce_loss_score"): 0.91},
      "sparse_probing": {("sae", "sae_top_1_test_accuracy"): 0.71}}),
    ("gemma-scope-2b-pt-res", "layer_12/width_65k/average_l0_72", "jumprelu", 65536,
     {"core": {("sparsity", "l0"): 72.0, ("model_performance_preservation", "ce_loss_score"): 0.97},
      "sparse_probing": {("sae", "sae_top_1_test_accuracy"): 0.75}}),
    ("sae_bench_gemma-2-2b_topk_width-2pow14_date-1109", "blocks.12.hook_resid_post__trainer_2", "topk", 16384,
     {"core": {("sparsity", "l0"): 40.0, ("model_performance_preservation", "ce_loss_score"): 0.95}}),
]
EVAL_TYPE = {"core": "core", "sparse_probing": "sparse_probing"}


def minimal(schema: dict, node: dict):
    """The smallest value of `node` that SAEBench's schema accepts: every required field, zeros."""
    if "$ref" in node:
        return minimal(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in node:
        return minimal(schema, node["anyOf"][0])
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return {name: minimal(schema, node["properties"][name]) for name in node.get("required", [])}
    return {"number": 0.0, "integer": 0, "string": "x", "boolean": False, "array": []}.get(kind)


def saebench_result(folder: str, release: str, sae_id: str, architecture: str, d_sae: int, values: dict) -> dict:
    schema = json.loads((SCHEMAS / f"eval_output_schema_{EVAL_TYPE[folder]}.json").read_text())
    result = minimal(schema, schema)
    result["eval_type_id"] = EVAL_TYPE[folder]
    for (category, metric), value in values.items():
        result["eval_result_metrics"].setdefault(category, {})[metric] = value
    result.update(sae_lens_release_id=release, sae_lens_id=sae_id, sae_cfg_dict={
        "model_name": "gemma-2-2b", "hook_layer": 12, "hook_name": "blocks.12.hook_resid_post",
        "architecture": architecture, "d_in": 2304, "d_sae": d_sae})
    errors = [e.message for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(result)]
    assert not errors, errors
    return result


def published_folder(root: Path) -> Path:
    """SAEBench's layout: <folder>/<eval_type>/<release>_<sae_id>_eval_results.json ('/' -> '_')."""
    for release, sae_id, architecture, d_sae, evals in PUBLISHED:
        for folder, values in evals.items():
            path = root / folder / f"{release}_{sae_id}_eval_results.json".replace("/", "_")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(saebench_result(folder, release, sae_id, architecture, d_sae, values)))
    return root


def run_results(root: Path) -> list[str]:
    """One SAE of a run as the workflow writes it: results/<run>/saebench/<model>/L<layer>/<sae>/<eval>.json."""
    path = root / "results/run/saebench/tiny_llama/L2/topk/core.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "eval_type_id": "core", "sae_cfg_dict": {"architecture": "topk"}, "eval_result_details": [{}] * 256,
        "eval_result_metrics": {"sparsity": {"l0": 8.0}, "model_performance_preservation": {"ce_loss_score": 0.5}}}))
    return [str(path)]


def leaderboard(tmp_path: Path, published: list[str]) -> pd.DataFrame:
    out = tmp_path / "out"
    saebench_leaderboard(run_results(tmp_path), str(out / "leaderboard.md"), str(out / "leaderboard.csv"),
                         str(out / "frontier.png"), str(out / "metrics.png"), published=published)
    assert (out / "frontier.png").stat().st_size > 0 and (out / "metrics.png").stat().st_size > 0
    return pd.read_csv(out / "leaderboard.csv")


def test_published_results_are_rows_of_their_own_with_their_values(tmp_path):
    files = [str(p) for p in sorted(published_folder(tmp_path / "published").rglob("*_eval_results.json"))]
    assert len(files) == 5
    board = leaderboard(tmp_path, files)
    assert list(board["source"]) == ["run", "published", "published", "published"]  # the run's SAEs first
    assert board.loc[0, ["model", "layer", "sae", "l0", "loss_recovered", "n_latents"]].tolist() == [
        "tiny_llama", 2, "topk", 8.0, 0.5, 256]
    rows = board[board["source"] == "published"].set_index("sae")
    for release, sae_id, architecture, d_sae, evals in PUBLISHED:
        row = rows.loc[f"{release}/{sae_id}"]
        assert (row["model"], row["layer"], row["architecture"], row["n_latents"]) == ("gemma-2-2b", 12, architecture, d_sae)
        assert row["l0"] == evals["core"][("sparsity", "l0")]
        assert row["loss_recovered"] == evals["core"][("model_performance_preservation", "ce_loss_score")]
        top_1 = evals.get("sparse_probing", {}).get(("sae", "sae_top_1_test_accuracy"))
        assert row["sparse_probing_top_1"] == top_1 if top_1 is not None else pd.isna(row["sparse_probing_top_1"])
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| published |" in markdown and "gemma-scope-2b-pt-res/layer_12/width_65k/average_l0_72" in markdown


def test_without_published_results_every_row_is_the_runs(tmp_path):
    assert list(leaderboard(tmp_path, [])["source"]) == ["run"]


def test_published_points_have_their_own_marker_and_label():
    table = pd.DataFrame({"source": ["run", "published", "published"], "architecture": ["topk", "topk", "jumprelu"],
                          "l0": [8.0, 40.0, 22.0], "loss_recovered": [0.5, 0.95, 0.91]})
    fig, ax = plt.subplots()
    _scatter(ax, table, "loss_recovered")
    lines = {line.get_label(): line for line in ax.get_lines()}
    plt.close(fig)
    assert {label: line.get_marker() for label, line in lines.items()} == {
        "topk": "o", "topk (published)": "^", "jumprelu (published)": "^"}
    assert lines["topk"].get_color() == lines["topk (published)"].get_color()  # a colour per architecture
    assert lines["topk (published)"].get_markerfacecolor() == "none"


def test_malformed_json_names_the_file(tmp_path):
    folder = published_folder(tmp_path / "published")
    bad = folder / "core" / "broken_eval_results.json"
    bad.write_text('{"eval_type_id": "core", ')
    with pytest.raises(ConfigError, match=f"saebench.published: {bad} is not readable JSON"):
        leaderboard(tmp_path, [str(bad)])


def parse_time_checks(published: str, tmp_path: Path) -> dict:
    """What workflow/rules/common.smk runs when the Snakefile is parsed by the process the user started
    (every job's parse runs all but the last check)."""
    cfg = compose(REPO / "config", ["experiment=tiny", f"saebench.published={published}",
                                    f"results_dir={tmp_path / 'results'}"])
    validate(cfg, SCHEMA)
    preflight(cfg)
    check_published_files(cfg["saebench"]["published"])
    return cfg


def test_the_published_files_are_the_leaderboards_inputs(tmp_path):
    folder = published_folder(tmp_path / "published")
    cfg = parse_time_checks(str(folder), tmp_path)
    assert user_inputs(cfg, "saebench_leaderboard") == [str(p) for p in sorted(folder.rglob("*_eval_results.json"))]
    assert user_inputs({**cfg, "saebench": {**cfg["saebench"], "published": None}}, "saebench_leaderboard") == []


@pytest.mark.parametrize("case, fragments", [
    ("missing", ["saebench.published is", "which is not a folder", "or null"]),
    ("empty", ["saebench.published is", "holds no *_eval_results.json file"]),
    ("malformed", ["saebench.published:", "broken_eval_results.json is not readable JSON"]),
    ("not_saebench", ["saebench.published:", "other_eval_results.json has no `eval_result_metrics`"]),
    ("no_layer", ["saebench.published:", "has no model or layer in `sae_cfg_dict`"]),
])
def test_a_bad_published_folder_stops_at_parse_time(case, fragments, tmp_path):
    folder = tmp_path / "published"
    if case != "missing":
        folder.mkdir()
    if case in ("malformed", "not_saebench", "no_layer"):
        published_folder(folder)
    if case == "malformed":
        (folder / "core" / "broken_eval_results.json").write_text("{")
    if case == "not_saebench":
        (folder / "core" / "other_eval_results.json").write_text("[1, 2]")
    if case == "no_layer":
        path = next(folder.rglob("*_eval_results.json"))
        result = json.loads(path.read_text())
        result["sae_cfg_dict"] = {"model_name": "gemma-2-2b"}
        path.write_text(json.dumps(result))
    with pytest.raises(ConfigError) as info:
        parse_time_checks(str(folder), tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
