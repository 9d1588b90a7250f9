"""The circuit benchmark's threshold sweeps: InterpBench's grid (|score| > t, strictly) and the score
levels, and how a sweep turns into each discovery method's grid parameter."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from interpflow.circuits.scoring import sweep_from_scores, sweep_over_grid
from interpflow.circuits.sweeps import GRID_PARAMETER, SWEEPS, method_params

REPO = Path(__file__).resolve().parents[2]
EDGES = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "x"), ("e", "x")]
SCORES = [0.5, -0.5, 0.1, 0.0, 1e-3]
# InterpBench's grid (experiments/commands/circuit_discovery_config.py, circuits-benchmark a93a3b4)
INTERPBENCH_GRID = [0, 1e-5, 1e-4, 1e-3, 1e-2, 0.025, 0.05, 0.1, 0.2, 0.5, 0.8, 1, 10, 20, 50, 70, 100, 200, 1000]


def circuits(table) -> dict[float, set[str]]:
    return {float(t): set(g.loc[g.in_circuit, "upstream"]) for t, g in table.groupby("threshold")}


def test_the_grid_keeps_edges_whose_absolute_score_is_strictly_above_each_threshold():
    found = circuits(sweep_over_grid(EDGES, SCORES, [0.0, 1e-3, 0.1, 0.5, 1.0]))
    assert found == {0.0: {"a", "b", "c", "e"},   # |0| > 0 is false: the zero-score edge is never in
                     1e-3: {"a", "b", "c"},       # a score equal to t is out
                     0.1: {"a", "b"},
                     0.5: set(),
                     1.0: set()}


def test_the_grid_keeps_raw_scores_and_can_rank_signed_scores():
    table = sweep_over_grid(EDGES, SCORES, [0.0, 0.2])
    assert table[table.threshold == 0.2].score.tolist() == SCORES
    signed = circuits(sweep_over_grid(EDGES, SCORES, [0.0, 0.2], absolute=False))
    assert signed == {0.0: {"a", "c", "e"}, 0.2: {"a"}}


def test_the_grid_applies_the_noise_floor_first():
    found = circuits(sweep_over_grid(EDGES, [0.5, 1e-12, 0.0, 0.0, 0.0], [0.0], noise_floor=1e-9))
    assert found == {0.0: {"a"}}   # 1e-12 <= 1e-9 * 0.5 counts as 0, so it is not > 0
    assert circuits(sweep_over_grid(EDGES, [0.5, 1e-12, 0.0, 0.0, 0.0], [0.0])) == {0.0: {"a", "b"}}


def test_score_levels_differ_from_the_grid_at_a_tie_with_the_threshold():
    """The score-level sweep takes every edge with |score| >= the level: a level is its own edges' score."""
    levels = circuits(sweep_from_scores(EDGES, SCORES, max_thresholds=None))
    assert levels[0.1] == {"a", "b", "c"} and levels[0.0] == {"a", "b", "c", "d", "e"}


def base_circuits(sweep: str) -> dict:
    circuits_cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["circuits"]
    return {**circuits_cfg, "sweep": sweep}


def test_interpbench_sweep_gives_every_method_the_one_grid():
    cfg = base_circuits("interpbench")
    assert cfg["sweeps"]["interpbench"]["thresholds"] == INTERPBENCH_GRID
    for method, parameter in GRID_PARAMETER.items():
        params = method_params(cfg, method)
        assert params[parameter] == INTERPBENCH_GRID, method
        assert "max_thresholds" not in params
    assert method_params(cfg, "sp_node")["steps"] == cfg["methods"]["sp_node"]["steps"]   # the method's settings stay


def test_score_level_sweep_gives_each_method_its_own_grid():
    cfg = base_circuits("score_levels")
    own = cfg["sweeps"]["score_levels"]
    assert method_params(cfg, "acdc")["thresholds"] == own["acdc_thresholds"]
    assert method_params(cfg, "sp_edge")["lambdas"] == own["sp_lambdas"]
    assert method_params(cfg, "eap")["max_thresholds"] == own["max_levels"]
    assert "thresholds" not in method_params(cfg, "eap_ig")


def test_an_unknown_sweep_or_method_is_refused():
    with pytest.raises(ValueError, match="circuits.sweep is 'levels'"):
        method_params(base_circuits("levels"), "acdc")
    with pytest.raises(ValueError, match="unknown discovery method"):
        method_params(base_circuits("interpbench"), "acdcc")


def test_the_schema_allows_exactly_the_known_sweeps():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["circuits"]["properties"]["sweep"]["enum"] == list(SWEEPS)


def test_the_leaderboard_names_one_sweep_and_refuses_mixed_score_files():
    from interpflow.circuits.leaderboard import _sweep

    frame = pd.DataFrame({"method": ["acdc", "eap", "eap"], "sweep": ["interpbench"] * 3, "n_thresholds": [19, 19, 19]})
    assert _sweep(frame) == ("interpbench", {"acdc": "19", "eap": "19"})
    for bad in (frame.assign(sweep=["interpbench", "score_levels", "interpbench"]), frame.drop(columns="sweep")):
        with pytest.raises(ValueError, match="disagree on"):
            _sweep(bad)
