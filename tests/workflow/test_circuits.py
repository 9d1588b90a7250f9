"""The circuit benchmark through the real Snakefile (experiment=interpbench_tiny): Tracr models and
their SIIT counterparts, every discovery method scored, the leaderboard, and a DAG that re-runs only
what a change touches."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from runs import scheduled_jobs, snakemake

pytestmark = pytest.mark.workflow

TASKS = ["histogram", "affine_mod"]
METHODS = ["acdc", "sp_node", "sp_edge", "eap", "eap_ig"]


def test_every_method_is_scored_on_both_model_kinds(interpbench_tiny_run):
    table = pd.read_csv(interpbench_tiny_run.results / "circuits/leaderboard.csv")
    assert sorted(table["method"].unique()) == sorted(METHODS) and sorted(table["task"].unique()) == sorted(TASKS)
    by = table.set_index(["method", "task"])
    # on the compiled models attribution and ACDC find the known edges exactly (measured 1.0)
    for method in ("acdc", "eap", "eap_ig"):
        for task in TASKS:
            assert by.loc[(method, task), "tracr_edge_auroc"] >= 0.95, (method, task)
    # histogram's circuit is its whole one-layer model: no negative node, every node FPR undefined;
    # InterpBench counts it as 0 (the headline: the highest TPR reached), the trapezoid has no ROC
    assert by.loc[("acdc", "histogram"), "tracr_node_auroc"] == 1.0
    assert table.set_index(["method", "task"])["tracr_node_auroc_trapezoid"].isna()[("acdc", "histogram")]
    assert set(table.columns) >= {"tracr_edge_auroc_trapezoid", "siit_edge_auroc_trapezoid"}
    for method in METHODS:   # the interpbench sweep: InterpBench's 19 thresholds for every method
        summary = json.loads((interpbench_tiny_run.results / f"circuits/scores/affine_mod/siit/{method}.json").read_text())
        assert summary["sweep"] == "interpbench" and summary["n_thresholds"] == 19 and summary["metric"] == "kl"
    assert (table["sweep"] == "interpbench").all()
    assert "Sweep `interpbench` (`circuits.sweep`)" in (interpbench_tiny_run.results / "circuits/leaderboard.md").read_text()
    for method in METHODS:
        assert (interpbench_tiny_run.results / f"circuits/plots/roc_{method}.png").stat().st_size > 10_000


def test_siit_models_learn_their_programs(interpbench_tiny_run):
    for task, accuracy, iia in (("affine_mod", 0.995, 0.995), ("histogram", 0.95, 0.5)):
        meta = json.loads((interpbench_tiny_run.results / f"circuits/models/{task}/siit.json").read_text())
        siit = meta["siit"]
        assert siit["accuracy"] >= accuracy and siit["iia"] >= iia, (task, siit["accuracy"], siit["iia"])
        assert meta["config"]["n_heads"] >= 4 and meta["config"]["d_mlp"] == 4 * meta["config"]["d_model"]
        assert len(siit["node_effects"]) == meta["config"]["n_layers"] * (meta["config"]["n_heads"] + 1)
        assert siit["mean_effect_in_circuit"] > 0.3, siit["node_effects"]
    assert "## SIIT models" in (interpbench_tiny_run.results / "circuits/leaderboard.md").read_text()


def discovery_jobs(run, *overrides: str) -> list[str]:
    """The methods of the circuit_discover jobs a dry run with `overrides` schedules."""
    changed = snakemake(run.workdir, [*run.overrides, *overrides], "-n")
    assert changed.returncode == 0, changed.stdout[-2000:]
    return [w["discovery"] for rule, w in scheduled_jobs(changed.stdout) if rule == "circuit_discover"]


def test_second_run_does_nothing_and_one_methods_settings_rerun_only_its_jobs(interpbench_tiny_run):
    again = snakemake(interpbench_tiny_run.workdir, interpbench_tiny_run.overrides, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    changed = snakemake(interpbench_tiny_run.workdir, [*interpbench_tiny_run.overrides, "circuits.methods.sp_node.steps=7"], "-n")
    assert changed.returncode == 0, changed.stdout[-2000:]
    jobs = scheduled_jobs(changed.stdout)
    assert {rule for rule, _ in jobs} == {"circuit_discover", "circuit_leaderboard", "run_config", "all"}
    assert {w["discovery"] for rule, w in jobs if rule == "circuit_discover"} == {"sp_node"}
    assert len([1 for rule, _ in jobs if rule == "circuit_discover"]) == 4  # 2 tasks x 2 model kinds


def test_the_sweep_in_use_decides_what_reruns(interpbench_tiny_run):
    # the grids of the sweep the run does not use change nothing; its own grid and a new sweep re-run every method
    assert discovery_jobs(interpbench_tiny_run, "circuits.sweeps.score_levels.acdc_thresholds=[0.001,0.1]") == []
    assert sorted(discovery_jobs(interpbench_tiny_run, "circuits.sweeps.interpbench.thresholds=[0,0.5]")) == sorted(METHODS * 4)
    assert sorted(discovery_jobs(interpbench_tiny_run, "circuits.sweep=score_levels")) == sorted(METHODS * 4)


def test_a_new_noise_floor_reruns_only_the_methods_that_rank_edges_by_score(interpbench_tiny_run):
    changed = snakemake(interpbench_tiny_run.workdir, [*interpbench_tiny_run.overrides, "circuits.noise_floor=1e-6"], "-n")
    assert changed.returncode == 0, changed.stdout[-2000:]
    discover = [w["discovery"] for rule, w in scheduled_jobs(changed.stdout) if rule == "circuit_discover"]
    assert sorted(set(discover)) == ["eap", "eap_ig"] and len(discover) == 8  # 2 tasks x 2 model kinds each
