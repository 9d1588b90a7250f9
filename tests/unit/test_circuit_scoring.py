"""Scoring of found circuits (InterpBench's rules): normalisation, confusion counts, sweeps, ROC, AUROC."""
import numpy as np
import pandas as pd
import pytest

from interpflow.circuits.graph import (
    EMBED, Circuit, ModelGraph, head_input, head_node, mlp_input, mlp_node, normalise_edge, output_node,
)
from interpflow.circuits.leaderboard import circuit_table, learned_tasks, method_means
from interpflow.circuits.patching import input_edges
from interpflow.circuits.scoring import (
    SWEEP_COLUMNS, apply_noise_floor, auroc, auroc_trapezoid, aurocs, compare, evaluation_edges, interpbench_curve,
    score_sweep, sweep_from_scores, sweep_table, trapezoid_curve,
)

OUT2 = output_node(2)


def small_graph() -> ModelGraph:
    return ModelGraph.of(2, 1, has_mlp=(False, True))


def test_evaluation_edges_are_normalised_without_embeddings_to_output():
    edges = evaluation_edges(small_graph())
    assert (EMBED, OUT2) not in edges
    # h00 <- E; h10 <- E, h00; mlp1 <- E, h00, h10; out <- h00, h10, mlp1
    assert len(edges) == 1 + 2 + 3 + 3
    assert all(not down.endswith("_input[0]") and not down.endswith("mlp_in") for _, down in edges)


def test_confusion_counts_promote_qkv_inputs_and_mlp_inputs():
    truth = Circuit.from_edges([(EMBED, head_node(0, 0)), (head_node(0, 0), head_node(1, 0)),
                                (head_node(1, 0), OUT2)])
    found = [(EMBED, head_input(0, 0, "q")), (EMBED, head_input(0, 0, "k")),  # one normalised edge
             (head_node(1, 0), OUT2), (mlp_node(1), OUT2), (EMBED, OUT2)]      # the last is not scored
    result = compare(found, truth, small_graph())
    edges, nodes = result["edges"], result["nodes"]
    assert (edges.tp, edges.fp, edges.fn, edges.tn) == (2, 1, 1, 5)
    assert edges.tpr == pytest.approx(2 / 3) and edges.fpr == pytest.approx(1 / 6)
    assert (nodes.tp, nodes.fp, nodes.fn, nodes.tn) == (4, 1, 0, 0)
    mlp_in_edge = compare([(head_node(1, 0), mlp_input(1))], truth, small_graph())["edges"]
    assert mlp_in_edge.fp == 1 and mlp_in_edge.tp == 0


def test_compare_rejects_edges_outside_the_graph():
    with pytest.raises(ValueError, match="not in the full graph"):
        compare([(head_node(1, 0), head_node(0, 0))], Circuit(), small_graph())


def test_trapezoid_curve_is_closed_and_sorted():
    x, y = trapezoid_curve([0.5, 0.25, float("nan")], [0.75, 0.5, 0.1])
    assert list(x) == [0.0, 0.25, 0.5, 1.0] and list(y) == [0.0, 0.5, 0.75, 1.0]


def test_interpbench_curve_drops_a_point_whose_tpr_falls_and_counts_undefined_rates_as_zero():
    x, y = interpbench_curve([0.5, 0.25, 0.75, float("nan")], [0.25, 0.5, 0.75, 0.1])
    # sorted: (0, 0.1) from the undefined FPR, (0.25, 0.5), (0.5, 0.25) dropped, (0.75, 0.75)
    assert list(x) == [0.0, 0.0, 0.25, 0.75, 1.0] and list(y) == [0.0, 0.1, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("fpr, tpr, interpbench, trapezoid", [
    ([0.2], [0.8], 0.64, 0.80),                          # InterpBench's rule credits no interpolation
    ([], [], 0.0, 0.5),                                  # only (0,0) and (1,1)
    ([0.5], [0.5], 0.25, 0.5),
    ([0.25, 0.5], [0.25, 0.5], 5 / 16, 0.5),
    ([0.25, 0.75], [0.25, 0.5], 4 / 16, 0.40625),
    ([0.0], [1.0], 1.0, 1.0),
    ([0.2, 0.4], [0.6, 0.3], 0.48, 0.54),                # (0.4, 0.3) dropped by InterpBench, kept by the trapezoid
])
def test_auroc_rules(fpr, tpr, interpbench, trapezoid):
    assert auroc(fpr, tpr) == pytest.approx(interpbench, abs=1e-12)
    assert auroc_trapezoid(fpr, tpr) == pytest.approx(trapezoid, abs=1e-12)


def test_undefined_rates_count_as_zero_in_the_headline_and_are_left_out_of_the_trapezoid():
    # no negatives (the circuit is the whole model): every FPR undefined, so every point at FPR 0
    assert auroc([float("nan")] * 3, [0.0, 0.5, 1.0]) == 1.0
    assert np.isnan(auroc_trapezoid([float("nan")] * 3, [0.0, 0.5, 1.0]))
    # an undefined TPR counts as 0: the point (0.5, 0) under (0.25, 0.5) is dropped
    assert auroc([0.25, 0.5], [0.5, float("nan")]) == pytest.approx(0.75 * 0.5)
    assert auroc_trapezoid([0.25, 0.5], [0.5, float("nan")]) == pytest.approx(auroc_trapezoid([0.25], [0.5]))


def test_noise_floor_makes_round_off_tie_with_exact_zeros():
    edges = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "x")]
    scores = [1.0, 0.5, 1e-20, 0.0]
    assert list(apply_noise_floor(np.array(scores), 1e-9)) == [1.0, 0.5, 0.0, 0.0]
    floored = sweep_from_scores(edges, scores, noise_floor=1e-9)
    assert sorted(set(floored.threshold)) == [0.0, 0.5, 1.0]   # c enters with d, at 0
    unfloored = sweep_from_scores(edges, scores)
    assert sorted(set(unfloored.threshold)) == [0.0, 1e-20, 0.5, 1.0]
    assert list(apply_noise_floor(np.array([-2.0, 1e-9, -3e-9]), 1e-9)) == [-2.0, 0.0, -3e-9]  # relative to max|s|
    with pytest.raises(ValueError, match="noise_floor"):
        apply_noise_floor(np.array(scores), 1.5)


def test_sweep_from_scores_enters_ties_together_and_caps_thresholds():
    edges = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "x")]
    table = sweep_from_scores(edges, [0.5, -0.5, 0.1, 0.0])
    assert list(table.columns) == SWEEP_COLUMNS
    sizes = table.groupby("threshold")["in_circuit"].sum().sort_index(ascending=False)
    assert list(sizes.index) == [0.5, 0.1, 0.0] and list(sizes) == [2, 3, 4]
    assert list(table[table.threshold == 0.5].score) == [0.5, -0.5, 0.1, 0.0]   # raw scores kept
    signed = sweep_from_scores(edges, [0.5, -0.5, 0.1, 0.0], absolute=False)
    assert signed[signed.threshold == 0.5].in_circuit.tolist() == [True, False, False, False]
    capped = sweep_from_scores([(str(i), "x") for i in range(100)], np.arange(100.0), max_thresholds=7)
    levels = sorted(set(capped.threshold))
    assert len(levels) == 7 and levels[0] == 0.0 and levels[-1] == 99.0


def test_sweep_table_checks_shapes():
    with pytest.raises(ValueError):
        sweep_table([("a", "x")], [1.0, 2.0], np.zeros((1, 1)), np.zeros((1, 1), dtype=bool))


def bigger_graph_and_truth(seed: int = 0):
    graph = ModelGraph.of(3, 2, has_mlp=(True, False, True))
    rng = np.random.default_rng(seed)
    universe = sorted(evaluation_edges(graph))
    picked = rng.choice(len(universe), size=8, replace=False)
    return graph, Circuit.from_edges([universe[i] for i in picked])


def scored_sweep(graph, truth, per_normalised_score, **kw) -> pd.DataFrame:
    """Each fine edge gets the score of its normalised edge (q/k/v of one head share a score)."""
    fine = input_edges(graph)
    scores = [per_normalised_score(normalise_edge(e)) for e in fine]
    return score_sweep(sweep_from_scores(fine, scores, **kw), truth, graph)


def test_true_edges_scored_highest_give_auroc_one_and_reversed_zero():
    graph, truth = bigger_graph_and_truth()
    perfect = aurocs(scored_sweep(graph, truth, lambda e: float(e in truth.edges)))
    assert perfect == {"node_auroc": 1.0, "node_auroc_trapezoid": 1.0, "edge_auroc": 1.0, "edge_auroc_trapezoid": 1.0}
    reversed_ = aurocs(scored_sweep(graph, truth, lambda e: float(e not in truth.edges)))
    assert reversed_["edge_auroc"] == 0.0 and reversed_["edge_auroc_trapezoid"] == 0.0


def test_graded_scores_give_the_rank_statistic():
    """With distinct scores the trapezoid AUROC is P(score of a true edge > score of a false one)."""
    graph, truth = bigger_graph_and_truth(seed=1)
    universe = sorted(evaluation_edges(graph))
    rng = np.random.default_rng(3)
    level = dict(zip(universe, rng.permutation(len(universe)) + 1.0))
    level[(EMBED, output_node(3))] = 0.0   # not scored; must not matter
    scored = scored_sweep(graph, truth, lambda e: level[e], max_thresholds=None)
    pos = [level[e] for e in universe if e in truth.edges]
    neg = [level[e] for e in universe if e not in truth.edges]
    rank_stat = np.mean([p > n for p in pos for n in neg])
    assert aurocs(scored)["edge_auroc_trapezoid"] == pytest.approx(rank_stat)
    assert 0.0 < rank_stat < 1.0
    graded = scored_sweep(graph, truth, lambda e: 10 + level[e] if e in truth.edges else level[e] / 100)
    assert aurocs(graded)["edge_auroc"] == 1.0


def test_score_sweep_reports_every_threshold():
    graph, truth = bigger_graph_and_truth()
    scored = scored_sweep(graph, truth, lambda e: float(e in truth.edges))
    assert list(scored.threshold) == [0.0, 1.0]
    top = scored[scored.threshold == 1.0].iloc[0]
    assert top.edge_tp == len(truth.edges) and top.edge_fp == 0 and top.edge_fn == 0
    n_edges = len(evaluation_edges(graph))
    assert (scored.edge_tp + scored.edge_fp + scored.edge_fn + scored.edge_tn == n_edges).all()


def test_learned_means_average_only_the_siit_models_that_learned_their_program():
    table = pd.DataFrame({"method": ["acdc", "acdc", "eap", "eap"], "task": ["a", "b", "a", "b"],
                          "tracr_edge_auroc": [1.0, 1.0, 1.0, 1.0], "siit_node_auroc": [0.9, 0.1, 0.7, 0.3],
                          "siit_edge_auroc": [0.8, 0.2, 0.6, 0.4]})
    siit = pd.DataFrame({"task": ["a", "b"], "accuracy": [0.95, 0.99], "iia": [0.92, 0.5]})
    learned = learned_tasks(siit)
    assert learned == ["a"]  # b's IIA is below the bar
    means = method_means(table, learned).set_index("method")
    assert means.loc["acdc", "siit_edge_auroc"] == pytest.approx(0.5)
    assert means.loc["acdc", "siit_edge_auroc_learned"] == pytest.approx(0.8)
    assert means.loc["eap", "siit_node_auroc_learned"] == pytest.approx(0.7)
    assert "siit_edge_auroc_learned" not in method_means(table, [])


def test_circuit_table_shows_the_headline_and_names_the_trapezoid():
    frame = pd.DataFrame({"method": ["eap", "eap"], "task": ["a", "a"], "kind": ["tracr", "siit"],
                          "node_auroc": [0.64, 0.5], "edge_auroc": [0.6, 0.4],
                          "node_auroc_trapezoid": [0.8, 0.7], "edge_auroc_trapezoid": [0.9, 0.6]})
    headline = circuit_table(frame).iloc[0]
    assert headline["tracr_node_auroc"] == 0.64 and headline["siit_edge_auroc"] == 0.4
    assert not any("trapezoid" in c for c in circuit_table(frame).columns)
    trapezoid = circuit_table(frame, "_trapezoid").iloc[0]
    assert trapezoid["tracr_node_auroc_trapezoid"] == 0.8 and trapezoid["siit_edge_auroc_trapezoid"] == 0.6
