"""SSV, ReFT-r1 and RePS train a vector through the frozen tiny model. The concept is planted: every
positive response contains " ocean ocean", negatives (and RePS's plain answers) never do. On
held-out instructions the trained vector must raise the target responses' log-probability (RePS:
the preference for the target over the plain answer), ReFT-r1's latent must detect the target; with
the training steps removed (epochs 0) the same checks fail."""

from __future__ import annotations

import random
from contextlib import nullcontext

import pandas as pd
import pytest
import torch
import yaml

from interpflow.errors import ConfigError

from interpflow.methods._through_model import PrefixCache
from interpflow.models.hooks import edit_residual
from interpflow.methods.data import EvalData, ModelHandle, TrainingData
from interpflow.methods.base import VectorMethod
from interpflow.methods.reft_r1 import ReFTR1
from interpflow.methods.reps import RePS, null_out
from interpflow.methods.ssv import SSV
from interpflow.metrics.detection import roc_auc
from interpflow.models.formatting import scored_tokens
from interpflow.models.hooks import add_to_residual, residual_after_block
from interpflow.models.loading import load_model
from interpflow.models.training import lm_batches, response_logprobs, tokenize_pairs

LAYER = 2
CLASSES = {"ssv": SSV, "reft_r1": ReFTR1, "reps": RePS}
WORDS = "the a river mountain city green quick music light table window story garden morning bright old".split()
N_TRAIN, N_HELD = 16, 10


def method_cfg(repo_root, name: str) -> dict:
    return yaml.safe_load((repo_root / "config" / "method" / f"{name}.yaml").read_text())


def filler(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def target(rng: random.Random) -> str:
    return f"{filler(rng, 1)} ocean ocean ocean ocean {filler(rng, 1)} ocean ocean"


@pytest.fixture(scope="module")
def handle(tiny_model_dir, tiny_model_cfg) -> ModelHandle:
    """The tiny random Llama with its output embeddings tied to its input embeddings. That plants what a
    trained LM has and a random one lacks: the direction that reads a token at layer L also writes it.
    Without it ReFT-r1's single direction cannot both detect the target and promote it."""
    model, tokenizer = load_model(tiny_model_dir)
    model.lm_head.weight = model.model.embed_tokens.weight
    return ModelHandle(model, tokenizer, tiny_model_cfg, LAYER)


@pytest.fixture(scope="module")
def planted(handle):
    """Training data of concept 0 (positives, shared negatives, pairs) and held-out evaluation texts."""
    rng = random.Random(0)
    positives = [{"input": f"Tell me about item {i}.", "output": target(rng), "label": 1, "category": "positive",
                  "concept_id": 0, "genre": "text"} for i in range(N_TRAIN)]
    negatives = [{"input": f"Describe place {i}.", "output": filler(rng, 8), "label": 0, "category": "negative",
                  "concept_id": -1, "genre": "text"} for i in range(N_TRAIN)]
    examples = pd.DataFrame(positives + negatives)
    examples.insert(0, "example_id", range(len(examples)))
    pairs = pd.DataFrame({"concept_id": 0, "input": [p["input"] for p in positives],
                          "concept_output": [p["output"] for p in positives],
                          "plain_output": [filler(rng, 8) for _ in positives]})
    data = TrainingData(concepts=pd.DataFrame({"concept_id": [0], "concept": ["the ocean"], "genre": ["text"]}),
                        examples=examples, model=handle, pairs=pairs)
    held = [f"Write a line about thing {i}." for i in range(N_HELD)]
    return {"data": data, "instructions": held, "target": [target(rng) for _ in held],
            "plain": [filler(rng, 8) for _ in held]}


@pytest.fixture(scope="module")
def trained(repo_root, planted):
    """Each method trained with its shipped config, and with the training steps removed."""
    out = {}
    for name, cls in CLASSES.items():
        cfg = method_cfg(repo_root, name)
        if name == "reft_r1":
            # On this random 64-dim model, AxBench's all-equal start ends (16 examples, 6 steps) with a latent
            # that fires on the negatives (ROC AUC 0.1); from a random start it detects (1.0). Both are tested below.
            cfg = {**cfg, "init": "random"}
        out[name] = cls(cfg).train(planted["data"])
        out[f"{name}_untrained"] = cls({**cfg, "epochs": 0}).train(planted["data"])
    return out


def mean_logprob(handle: ModelHandle, instructions, responses, steering=None) -> float:
    """Mean per-token log-probability of the responses given the steering prompts, inside `steering`."""
    pairs = tokenize_pairs(handle.tokenizer, handle.cfg, instructions, responses, 48)
    batch = lm_batches(pairs, len(pairs), handle.tokenizer.pad_token_id)[0]
    with torch.no_grad(), (steering if steering is not None else nullcontext()):
        logprobs = response_logprobs(handle.model, batch)
    return float((logprobs.sum(-1) / batch.response.sum(-1)).mean())


def plan_rows(n: int, strength: float) -> pd.DataFrame:
    return pd.DataFrame({"concept_row": [0] * n, "concept_id": 0, "factor": 1.0, "strength": strength})


def target_gain(method, tensors, handle, planted, strength: float) -> float:
    rows = plan_rows(N_HELD, strength)
    steered = mean_logprob(handle, planted["instructions"], planted["target"],
                           method.steering(tensors, handle.model, LAYER, rows))
    return steered - mean_logprob(handle, planted["instructions"], planted["target"])


@pytest.fixture(scope="module")
def held_out(handle, planted) -> EvalData:
    """Held-out target (positive) and plain (negative) responses with their scored-token activations
    in the model's score_context (the tests' tiny model: bare_response)."""
    examples = pd.DataFrame({"input": planted["instructions"] * 2, "output": planted["target"] + planted["plain"]})
    return cached(handle, examples, None)


def cached(handle, examples: pd.DataFrame, context: str | None) -> EvalData:
    """Examples with their scored-token activations after block LAYER, one forward pass each."""
    acts = []
    for instruction, response in zip(examples["input"], examples["output"]):
        tokens = scored_tokens(handle.tokenizer, handle.cfg, instruction, response, 256, context)
        ids = torch.tensor([tokens.input_ids])
        with torch.no_grad():
            hidden = residual_after_block(handle.model, LAYER, ids, torch.ones_like(ids))
        acts.append(hidden[0, tokens.score_start :])
    return EvalData(examples=examples.assign(n_tokens=[len(a) for a in acts]), acts=torch.cat(acts), model=handle)


def detection_auroc(method, tensors, data: EvalData) -> float:
    max_scores, _ = method.score_examples(tensors, data)
    return roc_auc([1] * N_HELD + [0] * N_HELD, max_scores[:, 0].tolist())


# --- shared machinery -----------------------------------------------------------------------


def test_configs_build_and_declare_their_needs(repo_root):
    for name, cls in CLASSES.items():
        cfg = method_cfg(repo_root, name)
        assert cls(cfg).cfg == cfg and cfg["name"] == name == cls.name
        assert cls.needs == "model" and cls.steers
    assert SSV.detects is True and SSV.unit_directions is False and SSV({}).factors([0.5]) == [0.5]
    assert ReFTR1.detects is True and ReFTR1.unit_directions is True
    assert RePS.detects is False and RePS.uses_pairs is True and RePS.unit_directions is False
    assert "factors" not in method_cfg(repo_root, "ssv")  # factor x a_c: the experiment's grid, as for every detector


def test_prefix_cache_matches_the_full_forward(handle, planted):
    """Starting after block L from cached states gives the same log-probabilities as running every block."""
    data = planted["data"]
    pairs = tokenize_pairs(handle.tokenizer, handle.cfg, data.examples["input"].tolist(),
                           data.examples["output"].tolist(), 48)
    cache = PrefixCache(handle, pairs, batch_size=5)
    vector = torch.randn(handle.model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    rows = [3, 17, 0, 9]
    batch = cache.batch(rows)
    with torch.no_grad():
        with add_to_residual(handle.model, LAYER, vector.expand(len(rows), -1)):
            full = response_logprobs(handle.model, batch)
        with cache.run_from(batch), add_to_residual(handle.model, LAYER, vector.expand(len(rows), -1)):
            cached = response_logprobs(handle.model, batch)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)


# --- SSV ------------------------------------------------------------------------------------


def test_ssv_raises_the_target(handle, planted, trained):
    tensors = trained["ssv"]
    assert tensors["directions"].shape == (1, handle.model.config.hidden_size)
    assert target_gain(SSV({}), tensors, handle, planted, strength=1.0) > 0.2  # nats per token


def test_ssv_latent_is_relu_of_the_raw_vector(repo_root, handle, trained, held_out):
    """AxBench's SSV detector: max over scored tokens of ReLU(h . v), v as trained (not normalised); the detect
    job recomputes the activations through the model, and they match the cache's."""
    tensors = trained["ssv"]
    v = tensors["directions"][0]
    assert tensors["threshold"].tolist() == [0.0] and abs(v.norm().item() - 1) > 0.05
    method = SSV(method_cfg(repo_root, "ssv"))
    max_scores, mean_scores = method.score_examples(tensors, EvalData(examples=held_out.examples.drop(columns="n_tokens"),
                                                                      model=handle))
    token_latents = torch.relu(held_out.acts @ v).split(held_out.examples["n_tokens"].tolist())
    torch.testing.assert_close(max_scores[:, 0], torch.stack([z.max() for z in token_latents]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mean_scores[:, 0], torch.stack([z.mean() for z in token_latents]), atol=1e-4, rtol=1e-4)
    assert (max_scores >= 0).all()


def test_ssv_without_training_does_not(handle, planted, trained):
    assert target_gain(SSV({}), trained["ssv_untrained"], handle, planted, strength=1.0) < 0.05


# --- ReFT-r1 --------------------------------------------------------------------------------


def test_reft_r1_detects_and_steers(repo_root, handle, planted, trained, held_out):
    tensors = trained["reft_r1"]
    torch.testing.assert_close(tensors["directions"].norm(dim=1), torch.ones(1))
    # z = ReLU((h - mu) . w): the training responses' mean state mu goes into the read bias
    assert tensors["threshold"].tolist() == [0.0] and tensors["read_bias"].abs().item() > 0
    method = ReFTR1(method_cfg(repo_root, "reft_r1"))
    assert detection_auroc(method, tensors, held_out) >= 0.9
    max_scores, _ = method.score_examples(tensors, held_out)
    a_c = float(max_scores[:N_HELD, 0].max())  # the concept's max latent on its positives
    assert target_gain(method, tensors, handle, planted, strength=a_c) > 0.08


def test_reft_r1_starts_from_axbench_direction_and_span(handle, planted):
    """init axbench: every coordinate 1/sqrt(d); the top k spans every token but each example's first (left
    padding included), or the response's tokens only."""
    from interpflow.methods.reft_r1 import initial_direction, top_k_span

    w = initial_direction("axbench", 64, torch.Generator(), "cpu")
    torch.testing.assert_close(w.detach(), torch.full((64,), 1 / 8.0))
    pairs = tokenize_pairs(handle.tokenizer, handle.cfg, ["Hi.", "A longer instruction here."], ["ocean", "sea sea"], 48)
    batch = lm_batches(pairs, 2, handle.tokenizer.pad_token_id)[0]
    span = top_k_span(batch, "all")
    for r, (prompt, response) in enumerate(pairs):
        n = len(prompt) + len(response)
        assert span[r].sum() == n - 1 and not span[r, batch.ids.shape[1] - n]
    assert top_k_span(batch, "response").equal(batch.response.bool())
    with pytest.raises(ConfigError, match="topk_span"):
        top_k_span(batch, "prompt")


def test_reft_r1_without_training_neither_detects_nor_steers(repo_root, handle, planted, trained, held_out):
    tensors = trained["reft_r1_untrained"]
    method = ReFTR1(method_cfg(repo_root, "reft_r1"))
    assert detection_auroc(method, tensors, held_out) < 0.9
    max_scores, _ = method.score_examples(tensors, held_out)
    assert target_gain(method, tensors, handle, planted, strength=float(max_scores[:N_HELD, 0].max())) < 0.08


def test_reft_r1_detects_in_the_context_it_trained_in(repo_root, handle, trained, held_out):
    """ReFT-r1 trains on the model's prompt + response, so it detects (and sets a_c) there too, even
    for a model whose score_context is bare_response, and whatever cache the stage passes."""
    assert handle.cfg["score_context"] == "bare_response"
    method, tensors = ReFTR1(method_cfg(repo_root, "reft_r1")), trained["reft_r1"]
    in_prompt = cached(handle, held_out.examples.drop(columns="n_tokens"), "prompt")
    for want, got in zip(VectorMethod.score_examples(method, tensors, in_prompt), method.score_examples(tensors, held_out)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    bare, _ = VectorMethod.score_examples(method, tensors, held_out)
    assert not torch.allclose(bare, method.score_examples(tensors, held_out)[0], atol=1e-3)  # the contexts differ


# --- RePS -----------------------------------------------------------------------------------


def preference(handle, planted, steering_factory=None) -> float:
    """Mean per-token log-probability of the target minus that of the plain answer."""
    def context():
        return steering_factory() if steering_factory else None
    return (mean_logprob(handle, planted["instructions"], planted["target"], context())
            - mean_logprob(handle, planted["instructions"], planted["plain"], context()))


def reps_preferences(repo_root, handle, planted, tensors) -> dict[str, float]:
    """The preference unsteered, steered at the best of the method's factors (as the benchmark picks it),
    steered the other way at that factor, and under the null intervention RePS trains for suppression."""
    method = RePS(method_cfg(repo_root, "reps"))
    v = tensors["directions"][0]

    def steered(strength: float) -> float:
        return preference(handle, planted, lambda: method.steering(tensors, handle.model, LAYER,
                                                                   plan_rows(N_HELD, strength)))

    best = max(method.factors([]), key=steered)
    return {
        "unsteered": preference(handle, planted),
        "steered": steered(best),
        "negated": steered(-best),
        "nulled": preference(handle, planted, lambda: edit_residual(handle.model, LAYER, null_out(v))),
    }


def test_reps_steers_toward_the_concept_and_suppresses_it(repo_root, handle, planted, trained):
    p = reps_preferences(repo_root, handle, planted, trained["reps"])
    assert p["steered"] > p["unsteered"] + 0.08
    assert p["negated"] < p["unsteered"] - 0.08
    assert p["nulled"] < p["unsteered"] - 0.08  # the suppression intervention it was trained with


def test_reps_without_training_does_not_steer(repo_root, handle, planted, trained):
    p = reps_preferences(repo_root, handle, planted, trained["reps_untrained"])
    assert not p["steered"] > p["unsteered"] + 0.08
    assert not p["nulled"] < p["unsteered"] - 0.08
