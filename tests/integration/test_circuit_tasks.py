"""Every Tracr task compiles to a TransformerLens model that computes its RASP program, with a
ground-truth circuit that fits the model's graph, its weights and its behaviour; a saved model
loads back the same."""

from __future__ import annotations

import json

import pytest
import torch
from tracr.rasp import rasp

from interpflow.circuits.stages import circuit_compile as stage_compile
from interpflow.circuits.graph import EMBED, head_node, mlp_node, output_node
from interpflow.circuits.tasks import TASKS, brackets, counting, elementwise, get_task, sequence
from interpflow.circuits.tracr_compile import BOS, tracr_assembled
from interpflow.circuits.tracr_model import TracrModel, compile_task, load

NAMES = sorted(TASKS)
SAMPLE = 256
ATOL = 1e-4  # numerical outputs: float32 weights of size up to tracr's MLP exactness (100)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models() -> dict[str, TracrModel]:
    return {name: compile_task(name) for name in NAMES}


def expected(m: TracrModel, inputs: list[list]) -> list[list]:
    task = get_task(m.task)
    return [task.evaluate(x, m.compiled.program) for x in inputs]


def test_registry_has_the_tasks_once():
    modules = (sequence, counting, brackets, elementwise)
    assert len(TASKS) == sum(len(module.TASKS) for module in modules) >= 12
    with pytest.raises(KeyError, match="unknown circuit task"):
        get_task("no_such_task")


@pytest.mark.parametrize("name", NAMES)
def test_program_names_are_unique_and_kind_matches(name):
    task = get_task(name)
    program = task.program()
    seen, stack = {}, [program]
    while stack:
        expr = stack.pop()
        seen[expr.unique_id] = expr
        stack.extend(expr.children)
    names = [e.name for e in seen.values()]
    assert len(names) == len(set(names)), sorted(names)
    assert rasp.is_categorical(program) == task.categorical
    assert BOS not in task.vocab


def test_inputs_enumerate_small_spaces_and_sample_large_ones():
    task = get_task("reverse")  # 3 letters, 5 positions: 243 inputs
    every = task.inputs(count=300)
    assert len(every) == 243 == len({tuple(x) for x in every})
    short = task.inputs(count=300, length=2)
    assert len(short) == 9 and all(len(x) == 2 for x in short)
    drawn = task.inputs(count=50, seed=1)
    assert len(drawn) == 50 and all(len(x) == 5 and set(x) <= set(task.vocab) for x in drawn)
    assert drawn == task.inputs(count=50, seed=1) != task.inputs(count=50, seed=2)
    with pytest.raises(ValueError):
        task.inputs(length=6)


@pytest.mark.parametrize("name", ["balanced_parens", "palindrome"])
def test_samplers_mix_in_the_rare_class(name):
    task = get_task(name)
    outputs = [task.evaluate(x)[0] for x in task.inputs(count=200, seed=0)]
    assert 40 <= outputs.count("yes") <= 160


def test_codec_puts_bos_first_and_refuses_bad_batches(models):
    codec = models["reverse"].codec
    ids = codec.encode([["a", "b"], ["c", "c"]])
    assert ids.shape == (2, 3)
    assert [codec.input_tokens[i] for i in ids[0].tolist()] == [BOS, "a", "b"]
    with pytest.raises(ValueError, match="different lengths"):
        codec.encode([["a"], ["a", "b"]])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        codec.encode([["z"]])


def batches(name: str, count: int = SAMPLE, seed: int = 0) -> list[list[list]]:
    """Inputs of the full length and of one token less: with a single length, whatever computes
    the length is a constant, right by construction even when broken."""
    task = get_task(name)
    return [task.inputs(count, seed=seed), task.inputs(count, seed=seed, length=task.max_seq_len - 1)]


@pytest.mark.parametrize("name", NAMES)
def test_model_computes_the_program(models, name):
    m = models[name]
    for inputs in batches(name):
        want = expected(m, inputs)
        assert len({tuple(w) for w in want}) > 1, "the sample does not exercise the task"
        got = m.run(inputs)
        if m.categorical:
            wrong = [(x, g, w) for x, g, w in zip(inputs, got, want) if g != w]
            assert not wrong, wrong[:3]
        else:
            torch.testing.assert_close(torch.tensor(got), torch.tensor(want, dtype=torch.float32), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_circuit_fits_the_model_graph(models, name):
    m = models[name]
    graph, circuit = m.graph, m.circuit
    out = output_node(m.cfg["n_layers"])
    assert circuit.nodes <= set(graph.nodes)
    assert circuit.edges <= set(graph.edges)
    assert {EMBED, out} <= circuit.nodes and len(circuit.nodes) >= 3
    # every node lies on a path from the embeddings to the output
    forward, backward = _reachable(circuit.edges, EMBED), _reachable({(b, a) for a, b in circuit.edges}, out)
    assert circuit.nodes == forward & backward


def _reachable(edges, start: str) -> set[str]:
    found, frontier = {start}, [start]
    while frontier:
        node = frontier.pop()
        for a, b in edges:
            if a == node and b not in found:
                found.add(b)
                frontier.append(b)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_circuit_nodes_are_the_components_with_weights(models, name):
    m = models[name]
    model = m.model
    for layer in range(m.cfg["n_layers"]):
        for head in range(m.cfg["n_heads"]):
            assert bool(model.W_O[layer, head].any()) == (head_node(layer, head) in m.circuit.nodes)
        has_weights = bool(model.W_in[layer].any()) and bool(model.W_out[layer].any())
        assert has_weights == m.has_mlp[layer] == (mlp_node(layer) in m.circuit.nodes)


def weight_edges(m: TracrModel) -> set[tuple[str, str]]:
    """The edges read off the weights alone: u -> d when d's input weights read a residual
    dimension u's output weights write (the constant `one` and the BOS token aside)."""
    model = m.model
    ignore = torch.tensor([label in ("one", f"tokens:{BOS}") for label in m.residual_labels])

    def dims(weight: torch.Tensor, axis: int) -> torch.Tensor:
        return weight.ne(0).any(axis) & ~ignore

    writers = {EMBED: dims(model.W_E, 0) | dims(model.W_pos, 0)}
    edges = set()
    for layer in range(m.cfg["n_layers"]):
        heads = {}
        for h in range(m.cfg["n_heads"]):
            if model.W_O[layer, h].any():
                reads = dims(model.W_Q[layer, h], 1) | dims(model.W_K[layer, h], 1) | dims(model.W_V[layer, h], 1)
                edges |= {(w, head_node(layer, h)) for w, wrote in writers.items() if (wrote & reads).any()}
                heads[head_node(layer, h)] = dims(model.W_O[layer, h], 0)
        writers |= heads
        if model.W_out[layer].any():
            reads = dims(model.W_in[layer], 1)
            edges |= {(w, mlp_node(layer)) for w, wrote in writers.items() if (wrote & reads).any()}
            writers[mlp_node(layer)] = dims(model.W_out[layer], 0)
    unembedded = dims(model.W_U, 1)
    out = output_node(m.cfg["n_layers"])
    return edges | {(w, out) for w, wrote in writers.items() if (wrote & unembedded).any()}


@pytest.mark.parametrize("name", NAMES)
def test_circuit_edges_are_the_ones_the_weights_have(models, name):
    m = models[name]
    assert weight_edges(m) == set(m.circuit.edges)


@pytest.mark.parametrize("name", NAMES)
def test_every_circuit_node_changes_the_output_when_zeroed(models, name):
    m = models[name]
    for node in m.circuit.nodes - {EMBED, output_node(m.cfg["n_layers"])}:
        layer = int(node.split(".")[1])
        if "attn" in node:
            head = int(node.rsplit("[", 1)[1].rstrip("]"))

            def zero(x, hook, head=head):
                x[:, :, head] = 0
                return x

            hook = (f"blocks.{layer}.attn.hook_result", zero)
        else:
            hook = (f"blocks.{layer}.hook_mlp_out", lambda x, hook: torch.zeros_like(x))
        assert any(_changes(m, inputs, hook) for inputs in batches(name)), node


def _changes(m: TracrModel, inputs: list[list], hook) -> bool:
    with torch.no_grad():
        ablated = m.codec.decode(m.model.run_with_hooks(m.codec.encode(inputs), fwd_hooks=[hook]))
    clean = m.run(inputs)
    if m.categorical:
        return ablated != clean
    return not torch.allclose(torch.tensor(ablated), torch.tensor(clean), atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_correspondence_names_circuit_nodes(models, name):
    m = models[name]
    program = m.compiled.program
    inner = m.circuit.nodes - {EMBED, output_node(m.cfg["n_layers"])}
    assert m.correspondence["tokens"] == [EMBED]
    assert all(nodes and set(nodes) <= m.circuit.nodes for nodes in m.correspondence.values())
    assert set().union(*m.correspondence.values()) - {EMBED} == inner
    into_output = {a for a, b in m.circuit.edges if b == output_node(m.cfg["n_layers"])}
    assert set(m.correspondence[program.name]) >= into_output


def test_save_and_load_round_trip(models, tmp_path):
    inputs = {name: get_task(name).inputs(64, seed=3) for name in ("balanced_parens", "frac_prevs", "sort")}
    for name, batch in inputs.items():
        weights, meta = tmp_path / f"{name}.safetensors", tmp_path / f"{name}.json"
        stage_compile(name, weights, meta)  # a fresh compilation: it must give the same model
        loaded, original = load(weights, meta), models[name]
        assert loaded.compiled is None
        tokens = original.codec.encode(batch)
        with torch.no_grad():
            assert torch.equal(loaded.model(tokens), original.model(tokens))
        assert loaded.run(batch) == original.run(batch)
        assert (loaded.circuit, loaded.correspondence, loaded.has_mlp) == (
            original.circuit, original.correspondence, original.has_mlp)
        assert (loaded.codec, loaded.cfg, loaded.vocab) == (original.codec, original.cfg, original.vocab)
        stored = json.loads(meta.read_text())
        assert stored["output_kind"] == get_task(name).output_kind
        assert stored["max_seq_len"] == get_task(name).max_seq_len


def test_load_refuses_another_format(models, tmp_path):
    weights, meta = tmp_path / "m.safetensors", tmp_path / "m.json"
    stage_compile("histogram", weights, meta)
    stored = json.loads(meta.read_text())
    meta.write_text(json.dumps(stored | {"format": "something-else"}))
    with pytest.raises(ValueError, match="not a"):
        load(weights, meta)


def test_weights_equal_tracr_own_assembly(models):
    """tracr's own assembled (Haiku) model of the same craft model: same residual basis, same
    token ids, same final residual stream."""
    m = models["balanced_parens"]  # four heads in a layer, layers without attention, 146-wide MLPs
    assembled = tracr_assembled(m.compiled)
    assert assembled.residual_labels == m.residual_labels
    assert assembled.input_encoder.encoding_map == {t: i for i, t in enumerate(m.codec.input_tokens)}
    inputs = get_task("balanced_parens").inputs(3, seed=5)
    _, cache = m.model.run_with_cache(m.codec.encode(inputs))
    ours = cache[f"blocks.{m.cfg['n_layers'] - 1}.hook_resid_post"]
    for row, x in enumerate(inputs):
        theirs = torch.tensor(assembled.apply([BOS, *x]).transformer_output[0].tolist())
        torch.testing.assert_close(ours[row], theirs, atol=1e-5, rtol=0)
