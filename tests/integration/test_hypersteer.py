"""HyperSteer on the tiny Llama: one hypernetwork trained across three concepts, each with its own
planted response, makes for each concept a vector that raises that concept's responses more than
the other concepts' vectors do; untrained, it does not."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from interpflow.methods import build_method
from interpflow.methods.data import ModelHandle, TrainingData
from interpflow.methods.hypersteer import HyperSteer
from interpflow.models.formatting import prompt_ids
from interpflow.models.loading import load_model
from interpflow.models.training import lm_batches, response_logprobs, tokenize_pairs

LAYER = 2
PHRASES = {
    0: "Zebra stripes and zebra manes on the zebra plains.",
    1: "Piano keys and piano chords in the piano hall.",
    2: "Volcano lava and volcano ash from the volcano peak.",
}
CONCEPTS = {0: "zebras", 1: "pianos", 2: "volcanoes"}
TRAIN_INSTRUCTIONS = [
    "Tell me about your day.", "What is a good breakfast?", "Describe a city.", "Give me a tip for sleeping.",
    "Write a short greeting.", "How do plants grow?", "Name a hobby.", "What is the weather like?",
    "Explain a rainbow.", "Suggest a weekend plan.", "What makes a good friend?", "Describe the sea.",
]
# nats per response token. The random model's logits span only ~+-1.3 (norm 8 states x embeddings of
# norm 0.16), so no vector moves a token's log-prob by more than ~2.5; training reaches ~0.2-0.3.
MARGIN = 0.1
TEST_INSTRUCTIONS = ["What should I read next?", "How do I learn to cook?", "Describe your favourite place."]


@pytest.fixture(scope="module")
def cfg(repo_root) -> dict:
    return yaml.safe_load((repo_root / "config" / "method" / "hypersteer.yaml").read_text())


@pytest.fixture(scope="module")
def handle(tiny_model_dir, tiny_model_cfg) -> ModelHandle:
    torch.manual_seed(0)
    model, tokenizer = load_model(tiny_model_dir, device="cpu")
    return ModelHandle(model, tokenizer, tiny_model_cfg, LAYER)


def training_data(handle: ModelHandle) -> TrainingData:
    rows = []
    for cid, phrase in PHRASES.items():
        for i in TRAIN_INSTRUCTIONS:
            rows.append({"concept_id": cid, "input": i, "output": phrase, "label": 1, "category": "positive"})
        for i in TRAIN_INSTRUCTIONS[:3]:  # negatives: not trained on
            rows.append({"concept_id": cid, "input": i, "output": "Okay.", "label": 0, "category": "negative"})
    examples = pd.DataFrame(rows).assign(genre="text")
    examples.insert(0, "example_id", range(len(examples)))
    concepts = pd.DataFrame({"concept_id": list(CONCEPTS), "concept": list(CONCEPTS.values()), "genre": "text"})
    return TrainingData(concepts=concepts, examples=examples, model=handle)


def left_pad(sequences: list[list[int]], pad_id: int):
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(seq)
        mask[row, width - len(seq):] = 1
    return ids, mask


def logprob(handle: ModelHandle, respond_as: int, method=None, tensors=None, steer_with: int | None = None) -> float:
    """Mean per-token log-prob of concept `respond_as`'s phrase on the test instructions: unsteered, or
    steered by the vector made for concept `steer_with` (read off the prompt, as in generation's prefill)."""
    model, tokenizer = handle.model, handle.tokenizer
    responses = [PHRASES[respond_as]] * len(TEST_INSTRUCTIONS)
    pairs = tokenize_pairs(tokenizer, handle.cfg, TEST_INSTRUCTIONS, responses, 64)
    batch = lm_batches(pairs, len(pairs), tokenizer.pad_token_id)[0]
    with torch.no_grad():
        if method is None:
            logprobs = response_logprobs(model, batch)
        else:
            rows = pd.DataFrame({"concept": CONCEPTS[steer_with], "concept_row": 0, "instruction": TEST_INSTRUCTIONS})
            ids, mask = left_pad([p for p, _ in pairs], tokenizer.pad_token_id)
            with method.steering(tensors, model, LAYER, rows):
                model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))  # prefill
                logprobs = response_logprobs(model, batch)
    return float((logprobs.sum(1) / batch.response.sum(1)).mean())


def margins(method, tensors, handle) -> dict[tuple[int, int], float]:
    """For each pair (a, b): log-prob of a's responses steered by a's vector minus steered by b's."""
    lp = {(s, r): logprob(handle, r, method, tensors, s) for s in PHRASES for r in PHRASES}
    return {(a, b): lp[a, a] - lp[b, a] for a in PHRASES for b in PHRASES if a != b}


@pytest.fixture(scope="module")
def trained(cfg, handle):
    method = HyperSteer(cfg)
    return method, method.train(training_data(handle))


def test_artifact_is_the_hypernetwork(trained, handle):
    _, tensors = trained
    assert all(key.startswith("hyper.") for key in tensors)
    assert tensors["hyper.out.weight"].shape == (handle.model.config.hidden_size, 256)
    assert HyperSteer.detects is False and HyperSteer.uses_factor is False and HyperSteer.needs == "model"


def test_each_concepts_vector_raises_its_own_responses(trained, handle):
    method, tensors = trained
    for (a, b), margin in margins(method, tensors, handle).items():
        assert margin > MARGIN, (a, b, margin)
    for r in PHRASES:
        assert logprob(handle, r, method, tensors, r) > logprob(handle, r) + 2 * MARGIN


def test_untrained_hypernetwork_does_not_steer(cfg, handle):
    method = HyperSteer({**cfg, "steps": 0})
    tensors = method.train(training_data(handle))
    assert max(margins(method, tensors, handle).values()) < MARGIN


def test_vector_is_read_from_the_prompt_only_and_padding_does_not_change_it(trained, handle):
    """Left padding in a batch gives each row the vector it gets alone; generation uses the cached vector."""
    method, tensors = trained
    model, tokenizer = handle.model, handle.tokenizer
    instructions = ["Hi.", "Please describe, in a few words, the place where you would most like to live."]
    prompts = [prompt_ids(tokenizer, handle.cfg, i) for i in instructions]
    rows = pd.DataFrame({"concept": [CONCEPTS[0], CONCEPTS[1]], "concept_row": 0, "instruction": instructions})
    ids, mask = left_pad(prompts, tokenizer.pad_token_id)
    with torch.no_grad(), method.steering(tensors, model, LAYER, rows) as state:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    batched = state["vector"]
    assert out.shape[1] > ids.shape[1]
    for row in range(2):
        single = pd.DataFrame({"concept": [rows["concept"][row]], "concept_row": 0, "instruction": [instructions[row]]})
        alone = torch.tensor([prompts[row]])
        with torch.no_grad(), method.steering(tensors, model, LAYER, single) as state:
            model(input_ids=alone, attention_mask=torch.ones_like(alone))
        torch.testing.assert_close(batched[row], state["vector"][0], atol=1e-4, rtol=1e-3)
    assert batched.norm(dim=1).min() > 0


def test_the_config_shapes_the_hypernetwork_and_seeds_it(cfg, handle):
    """The registry builds HyperSteer from its name; width and heads come from the config, and the
    seed alone decides the initial weights."""
    small = {**cfg, "width": 32, "heads": 2, "steps": 0}
    method = build_method(small)
    assert type(method) is HyperSteer
    tensors = method.train(training_data(handle))
    d_model = handle.model.config.hidden_size
    assert tensors["hyper.concept_in.1.weight"].shape == (32, d_model)
    assert tensors["hyper.block.self_attn.in_proj_weight"].shape == (3 * 32, 32)
    assert method.network(tensors).block.self_attn.num_heads == 2
    again = build_method(small).train(training_data(handle))
    reseeded = build_method({**small, "seed": 1}).train(training_data(handle))
    assert all(torch.equal(tensors[k], again[k]) for k in tensors)
    assert not torch.equal(tensors["hyper.concept_in.1.weight"], reseeded["hyper.concept_in.1.weight"])
