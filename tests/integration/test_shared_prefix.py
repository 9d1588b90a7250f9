"""Activation caching with the examples' common start computed once (models/shared_prefix.py) against
full passes, on tiny random models of every architecture that takes it."""

from __future__ import annotations

import pytest
import torch

from interpflow.models import shared_prefix
from interpflow.models.loading import load_model
from interpflow.models.shared_decoding import ARCHITECTURES
from interpflow.models.shared_prefix import MIN_PREFIX, SharedPrefix, common_prefix_length
from interpflow.stages.activations import iter_activations, scored_examples

from tiny_models import tiny_model

LAYER = 2
INSTRUCTIONS = ["Hi", "What is two plus two?", "Name three colours of the rainbow, please.", "Tell me a story.", "Hi"]
RESPONSES = ["Hello!", "Four.", "Red, orange and yellow. " * 3, "Once upon a time there was a fox.", "x"]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu")[1]


def activations(model, tokenizer, examples, share: bool, monkeypatch) -> dict[int, torch.Tensor]:
    with monkeypatch.context() as patch:
        if not share:
            patch.setattr(SharedPrefix, "for_texts", classmethod(lambda *_: None))
        return {i: acts.clone() for i, acts in iter_activations(model, tokenizer, LAYER, examples, batch_size=2)}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_shared_prefix_matches_full_passes(arch, tokenizer, tiny_model_cfg, monkeypatch, one_torch_thread):
    model = tiny_model(arch, tokenizer)
    chat = {**tiny_model_cfg, "score_context": "prompt"}
    examples = scored_examples(tokenizer, chat, INSTRUCTIONS, RESPONSES, max_length=64)
    prefix = SharedPrefix.for_texts(model, LAYER, [e.input_ids for e in examples], min(e.score_start for e in examples))
    assert prefix is not None and prefix.length >= MIN_PREFIX  # the chat template's opening
    shared, full = (activations(model, tokenizer, examples, share, monkeypatch) for share in (True, False))
    assert shared.keys() == full.keys() == set(range(len(examples)))
    for i, expected in full.items():
        assert shared[i].shape == expected.shape == (len(examples[i].input_ids) - examples[i].score_start, 64)
        torch.testing.assert_close(shared[i], expected, rtol=1e-4, atol=1e-5)


def test_the_prefix_leaves_every_scored_token_to_the_batches(tokenizer, tiny_model_cfg):
    """Identical examples share all their tokens; the prefix still stops where scoring starts."""
    model = tiny_model("llama", tokenizer)
    chat = {**tiny_model_cfg, "score_context": "prompt"}
    examples = scored_examples(tokenizer, chat, ["Same"] * 3, ["Same answer."] * 3, max_length=64)
    prefix = SharedPrefix.for_texts(model, LAYER, [e.input_ids for e in examples], examples[0].score_start)
    assert prefix.length == examples[0].score_start
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]], limit=5) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]], limit=1) == 1


def test_no_sharing_where_it_would_not_pay_or_the_model_cannot(tokenizer, monkeypatch):
    llama = tiny_model("llama", tokenizer)
    short = [[5, 6, 7, 8, 9, 10], [5, 6, 7, 11, 12, 13]]
    assert SharedPrefix.for_texts(llama, LAYER, short, 5) is None  # 3 tokens in common
    monkeypatch.setattr(shared_prefix, "MIN_PREFIX", 3)
    assert SharedPrefix.for_texts(llama, LAYER, short, 5).length == 3

    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=4, n_head=2))
    assert SharedPrefix.for_texts(gpt2, LAYER, short, 5) is None
    windowed = tiny_model("gemma3_text", tokenizer, sliding_window=4)
    assert SharedPrefix.for_texts(windowed, LAYER, short, 5) is None
