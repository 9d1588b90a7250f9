"""Edge patching and circuit discovery on a small TransformerLens model with a planted circuit.

The model (2 layers x 2 heads, d_model 12, no layer norm) splits its residual stream into three
subspaces: the embeddings write A; head 0.0 reads A (q, k, v) and writes B; head 1.0 reads A
(q, k) and B (v) and writes C; the MLP of layer 1 reads C and writes C; the unembedding reads C.
Layer 0 has no MLP (zero weights). Every other weight is small noise (1/50 of the planted ones),
so heads 0.1 and 1.1 and the off-circuit edges have small but non-zero effects.
"""
import pandas as pd
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interpflow.circuits.discovery import METHODS, discover
from interpflow.circuits.graph import EMBED, Circuit, head_input, head_node, mlp_input, mlp_node, output_node
from interpflow.circuits.patching import EdgePatcher, graph_of
from interpflow.circuits.scoring import SWEEP_COLUMNS, aurocs, node_realism, score_sweep
from interpflow.circuits.sweeps import method_params

A, B, C = slice(0, 4), slice(4, 8), slice(8, 12)
OUT = output_node(2)
TRUE_EDGES = [(EMBED, head_node(0, 0)), (EMBED, head_node(1, 0)), (head_node(0, 0), head_node(1, 0)),
              (head_node(1, 0), mlp_node(1)), (head_node(1, 0), OUT), (mlp_node(1), OUT)]
FAST_SP = {"lambdas": [0.01, 0.1, 1.0], "steps": 60, "lr": 0.1}
INTERPBENCH_GRID = [0, 1e-5, 1e-4, 1e-3, 1e-2, 0.025, 0.05, 0.1, 0.2, 0.5, 0.8, 1, 10, 20, 50, 70, 100, 200, 1000]


def planted_model(noise: float = 0.01, seed: int = 0) -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=12, d_head=4, n_heads=2, d_mlp=8, n_ctx=6, d_vocab=6, d_vocab_out=6, act_fn="relu",
        normalization_type=None, use_attn_result=True, use_split_qkv_input=True, use_hook_mlp_in=True, seed=seed)
    model = HookedTransformer(cfg)
    gen = torch.Generator().manual_seed(seed)

    def planted(*shape):
        return 0.5 * torch.randn(*shape, generator=gen)

    with torch.no_grad():
        for name, param in model.named_parameters():
            is_bias = name.rsplit(".", 1)[-1].startswith("b_")
            param.copy_(torch.zeros_like(param) if is_bias else noise * torch.randn(*param.shape, generator=gen))
        model.embed.W_E[:, A] = planted(6, 4)
        model.pos_embed.W_pos[:, A] = planted(6, 4)
        attn0, attn1 = model.blocks[0].attn, model.blocks[1].attn
        for weight in (attn0.W_Q, attn0.W_K, attn0.W_V):
            weight[0, A] = planted(4, 4)
        attn0.W_O[0][:, B] = planted(4, 4)
        attn1.W_Q[0, A], attn1.W_K[0, A], attn1.W_V[0, B] = planted(4, 4), planted(4, 4), planted(4, 4)
        attn1.W_O[0][:, C] = planted(4, 4)
        model.blocks[0].mlp.W_in.zero_()
        model.blocks[0].mlp.W_out.zero_()
        model.blocks[1].mlp.W_in[C] = planted(4, 8)
        model.blocks[1].mlp.W_out[:, C] = planted(8, 4)
        model.unembed.W_U[C] = 4 * planted(4, 6)
    return model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return planted_model()


@pytest.fixture(scope="module")
def tokens():
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, 6, (64, 6), generator=gen), torch.randint(0, 6, (64, 6), generator=gen)


@pytest.fixture(scope="module")
def patcher(model, tokens):
    return EdgePatcher(model, *tokens)


def edge_patch(patcher, edges) -> torch.Tensor:
    patch = patcher.zeros()
    for edge in edges:
        patch[patcher.edge_index[edge]] = 1.0
    return patch


def test_graph_leaves_out_the_empty_mlp(patcher):
    assert patcher.graph.has_mlp == (False, True)
    assert all(mlp_node(0) not in edge for edge in patcher.edges)
    assert len(patcher.edges) == 2 * 3 * 1 + 2 * 3 * 3 + 5 + 6


def test_patching_nothing_is_the_clean_run(model, tokens, patcher):
    assert torch.allclose(patcher.run(), model(tokens[0]), atol=1e-6)


def test_patching_every_edge_into_the_output_is_the_corrupted_run(model, tokens, patcher):
    into_output = [e for e in patcher.edges if e[1] == OUT]
    corrupted = model(tokens[1])
    assert torch.allclose(patcher.run(edge_patch(patcher, into_output)), corrupted, atol=1e-5)
    assert torch.allclose(patcher.run(torch.ones(patcher.n_edges)), corrupted, atol=1e-5)
    # the unembedding is linear: half-patched output edges give the average of the logits
    half = 0.5 * edge_patch(patcher, into_output)
    assert torch.allclose(patcher.run(half), (patcher.clean_logits + corrupted) / 2, atol=1e-5)


def test_patching_one_edge_matches_a_hand_written_hook(model, tokens, patcher):
    clean, corrupt = tokens
    _, clean_cache = model.run_with_cache(clean)
    _, corrupt_cache = model.run_with_cache(corrupt)
    delta = corrupt_cache["blocks.0.attn.hook_result"][:, :, 0] - clean_cache["blocks.0.attn.hook_result"][:, :, 0]

    def swap_value_input(x, hook):
        x = x.clone()
        x[:, :, 0] += delta
        return x

    expected = model.run_with_hooks(clean, fwd_hooks=[("blocks.1.hook_v_input", swap_value_input)])
    got = patcher.run(edge_patch(patcher, [(head_node(0, 0), head_input(1, 0, "v"))]))
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, patcher.clean_logits, atol=1e-3)


def test_starting_at_a_later_layer_gives_the_same_output(patcher):
    later = [e for e in patcher.edges if e[1] in (OUT, mlp_input(1), head_input(1, 0, "k"))][::2]
    patch = edge_patch(patcher, later)
    assert torch.allclose(patcher.run(patch, start_layer=1), patcher.run(patch), atol=1e-6)


def test_attribution_is_the_mask_gradient(patcher):
    def loss(logits):
        return torch.nn.functional.cross_entropy(logits[:, 1:].reshape(-1, 6),
                                                 patcher.clean_logits[:, 1:].argmax(-1).reshape(-1))
    scores = patcher.attribute(patcher.input_gradients(loss))
    patch = patcher.zeros().requires_grad_(True)
    (mask_grad,) = torch.autograd.grad(loss(patcher.run(patch)), [patch])
    assert torch.allclose(scores, mask_grad, atol=1e-5, rtol=1e-4)
    assert scores.abs().max() > 0.01


def recovered(table: pd.DataFrame, model, truth_edges=TRUE_EDGES) -> dict[str, float]:
    return aurocs(score_sweep(table, Circuit.from_edges(truth_edges), graph_of(model)))


@pytest.mark.parametrize("method, kind, params", [
    ("acdc", "kl", {}),
    ("acdc", "mse", {}),
    ("eap", "kl", {}),
    ("eap", "mse", {}),
    ("eap_ig", "kl", {}),
    ("eap_ig", "kl", {"interpolation": "mask", "steps": 5}),
    ("eap_ig", "kl", {"loss": "distance", "steps": 5}),
])
def test_methods_recover_the_planted_circuit(model, tokens, method, kind, params):
    table = discover(method, model, *tokens, kind, params)
    result = recovered(table, model)
    assert result["edge_auroc"] >= 0.95 and result["node_auroc"] >= 0.95, result
    wrong_truth = [(EMBED, head_node(0, 1)), (head_node(0, 1), head_node(1, 1)), (head_node(1, 1), OUT)]
    assert recovered(table, model, wrong_truth)["edge_auroc"] < 0.8


def test_subnetwork_probing_finds_the_planted_nodes_and_edges(model, tokens):
    nodes = recovered(discover("sp_node", model, *tokens, "kl", FAST_SP), model)
    edges = recovered(discover("sp_edge", model, *tokens, "kl", FAST_SP), model)
    assert nodes["node_auroc"] >= 0.95, nodes
    assert edges["edge_auroc"] >= 0.95, edges
    assert all(param.grad is None for param in model.parameters())


def test_discover_table_has_one_row_per_threshold_and_edge(model, tokens, patcher, tmp_path):
    table = discover("acdc", model, *tokens, "kl", {"thresholds": [0.001, 0.1]})
    assert list(table.columns) == SWEEP_COLUMNS
    assert len(table) == 2 * patcher.n_edges
    assert table.groupby("threshold").size().tolist() == [patcher.n_edges] * 2
    kept = table[(table.threshold == 0.001) & table.in_circuit]
    assert {e for e in zip(kept.upstream, kept.downstream)} >= {(head_node(1, 0), OUT), (mlp_node(1), OUT)}
    table.to_parquet(tmp_path / "found.parquet")
    assert pd.read_parquet(tmp_path / "found.parquet").equals(table)


def test_discover_rejects_unknown_methods_and_parameters(model, tokens):
    assert sorted(METHODS) == ["acdc", "eap", "eap_ig", "sp_edge", "sp_node"]
    with pytest.raises(ValueError, match="unknown discovery method"):
        discover("magic", model, *tokens, "kl")
    with pytest.raises(ValueError, match="unknown parameter"):
        discover("eap", model, *tokens, "kl", {"treshold": 1})
    with pytest.raises(ValueError, match="metric kind"):
        discover("eap", model, *tokens, "l1")


def test_node_realism_of_the_planted_circuit(patcher):
    planted = node_realism(patcher, [head_node(0, 0), head_node(1, 0), mlp_node(1)], "kl")
    assert planted["corrupt_distance"] > 0.01
    assert planted["faithfulness"] > 0.95
    nothing = node_realism(patcher, [], "kl")
    assert nothing["circuit_distance"] == pytest.approx(nothing["corrupt_distance"], rel=0.05)
    partial = node_realism(patcher, [head_node(1, 0), mlp_node(1)], "kl")
    assert partial["faithfulness"] < 0.9


@pytest.mark.parametrize("method", ["acdc", "eap", "eap_ig", "sp_node", "sp_edge"])
def test_every_method_runs_interpbench_s_grid(model, tokens, method):
    """The `interpbench` sweep: one circuit per value of InterpBench's grid for every method; for EAP
    and EAP-IG exactly the edges with |score| > t. (SP gets 5 steps per lambda: only its grid is checked.)"""
    short_sp = {"steps": 5, "lr": 0.1}
    circuits_cfg = {"sweep": "interpbench", "sweeps": {"interpbench": {"thresholds": INTERPBENCH_GRID}},
                    "methods": {"sp_node": short_sp, "sp_edge": short_sp}}
    table = discover(method, model, *tokens, "kl", method_params(circuits_cfg, method))
    assert sorted(table.threshold.unique()) == INTERPBENCH_GRID
    if method in ("eap", "eap_ig"):
        assert table.in_circuit.equals(table.score.abs() > table.threshold)
    if method in ("acdc", "eap", "eap_ig"):
        result = recovered(table, model)
        assert result["edge_auroc"] >= 0.9 and result["node_auroc"] >= 0.9, result
