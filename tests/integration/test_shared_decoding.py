"""Shared-prefix steered generation (models/shared_decoding.py) against model.generate under the same
hook and the full perplexity pass, on tiny random models of every architecture it claims."""

from __future__ import annotations

import math

import pytest
import torch

from interpflow.models.formatting import prompt_ids
from interpflow.models.generation import adding, generate, perplexity
from interpflow.models.loading import load_model
from interpflow.models.shared_decoding import ARCHITECTURES, generate_shared, supports

from tiny_models import tiny_model

LAYER = 1
INSTRUCTIONS = ["Hi", "What is two plus two?", "Name three colours of the rainbow, please.", "Tell me a story."]
BARE = ["Tell me", "Tell me a story.", "Tell me what two plus two is."]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu")[1]


def steering_plan(model, tokenizer, template: bool = True, instructions: list[str] = INSTRUCTIONS):
    """Every instruction under three edits: none, a random vector, and one along the end-of-sequence
    token's output embedding that ends generations early. With the chat template the prompts share
    a prefix; without it they share none, or only part of the shortest ("Tell me" / "Tell me a story.")."""
    cfg = {"name": "tiny", "prompt_style": "chat", "completion_template": "{instruction}\n"}
    to_ids = (lambda text: prompt_ids(tokenizer, cfg, text)) if template else (
        lambda text: tokenizer(text, add_special_tokens=False).input_ids)
    d_model = model.config.hidden_size
    eos_direction = model.get_output_embeddings().weight[tokenizer.eos_token_id].detach()
    edits = [torch.zeros(d_model), torch.randn(d_model, generator=torch.Generator().manual_seed(1)) * 6,
             eos_direction / eos_direction.norm() * 1000]
    plan = [(k, text) for k in range(len(edits)) for text in instructions]
    prompts = [to_ids(text) for _, text in plan]
    vectors = torch.stack([edits[k] for k, _ in plan])
    return prompts, vectors, [k for k, _ in plan]


def test_prompts_without_a_common_prefix(tokenizer, tiny_model_dir, one_torch_thread):
    model = load_model(tiny_model_dir, device="cpu")[0]
    for instructions in (BARE, ["Hi", "What is two plus two?"]):
        prompts, vectors, keys = steering_plan(model, tokenizer, template=False, instructions=instructions)
        expected = generate(model, tokenizer, prompts, adding(model, LAYER, vectors), max_new_tokens=5, batch_size=3)
        expected_ppl = perplexity(model, prompts, expected, batch_size=3, pad_id=tokenizer.pad_token_id)
        tokens, ppl = generate_shared(model, tokenizer, prompts, adding(model, LAYER, vectors), LAYER,
                                      max_new_tokens=5, batch_size=len(prompts), steering_keys=keys)
        assert tokens == expected
        for got, want in zip(ppl, expected_ppl):
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_shared_generation_matches_generate_and_the_perplexity_pass(arch, tokenizer, one_torch_thread):
    model = tiny_model(arch, tokenizer)
    assert supports(model)
    prompts, vectors, keys = steering_plan(model, tokenizer)
    expected = generate(model, tokenizer, prompts, adding(model, LAYER, vectors), max_new_tokens=6, batch_size=4)
    expected_ppl = perplexity(model, prompts, expected, batch_size=4, pad_id=tokenizer.pad_token_id)
    if arch == "llama":  # both stop paths run (Gemma 3's norms keep the edit from forcing the end token)
        assert any(len(g) == 0 for g in expected) and any(len(g) == 6 for g in expected)
    for steering_keys in (keys, None):
        for batch_size in (5, len(prompts)):
            tokens, ppl = generate_shared(model, tokenizer, prompts, adding(model, LAYER, vectors), LAYER,
                                          max_new_tokens=6, batch_size=batch_size, steering_keys=steering_keys)
            assert tokens == expected
            for got, want in zip(ppl, expected_ppl):
                assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-4)


def test_sampling_is_reproducible_and_steered(tokenizer, tiny_model_dir, one_torch_thread):
    model = load_model(tiny_model_dir, device="cpu")[0]
    prompts, vectors, keys = steering_plan(model, tokenizer)
    run = lambda seed: generate_shared(model, tokenizer, prompts, adding(model, LAYER, vectors), LAYER, 8, 6,
                                       temperature=1.0, seed=seed, steering_keys=keys)[0]
    first = run(0)
    assert run(0) == first
    assert run(1) != first
    assert max(max(g, default=0) for g in first) < len(tokenizer)


def test_a_sliding_window_in_reach_is_refused(tokenizer):
    model = tiny_model("gemma3_text", tokenizer)
    model.config.sliding_window = 16
    assert supports(model, 16) and not supports(model, 17)
    with pytest.raises(ValueError, match="sliding"):
        generate_shared(model, tokenizer, [list(range(5, 15))], adding(model, 0, torch.zeros(1, 64)), 0, 8, 1)


def test_an_unsupported_architecture_is_refused(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2))
    assert not supports(model)
    with pytest.raises(ValueError, match="gpt2"):
        generate_shared(model, tokenizer, [[1, 2, 3]], adding(model, 0, torch.zeros(1, 32)), 0, 2, 1)


def test_the_methods_that_steer_only_after_the_layer_are_the_vector_methods():
    """The steer stage takes the shared path for these; a method that edits below the layer (LoRA,
    LoReFT's other layers, SFT, HyperSteer) or changes the prompt (prompting) must not."""
    from interpflow.methods import METHODS
    from interpflow.methods.base import VectorMethod

    sharing = {name for name, cls in METHODS.items() if cls.edits_after_layer}
    assert sharing == {name for name, cls in METHODS.items() if issubclass(cls, VectorMethod)}
    assert {"diffmean", "probe", "sae"} <= sharing and not {"lora", "loreft", "sft", "prompt", "hypersteer"} & sharing
