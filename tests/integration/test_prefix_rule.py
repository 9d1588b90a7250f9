"""The excluded-prefix rule with SmolLM2's real tokenizer: position 0 is never scored, and only the
response's tokens reach a method."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import AutoTokenizer

from interpflow.errors import ConfigError
from interpflow.models.formatting import prompt_ids, scored_tokens, steering_prompt
from interpflow.models.hooks import residual_after_block
from interpflow.models.loading import load_model
from interpflow.stages.activations import activations_for

INSTRUCTION = "Describe the ocean in two sentences."
RESPONSE = "The ocean is vast and deep. Waves roll over the coral reefs."
STYLES = list(itertools.product(["chat", "completion"], ["bare_response", "prompt"]))


def model_cfg(prompt_style: str, score_context: str) -> dict:
    return {
        "name": f"tiny_{prompt_style}_{score_context}",
        "prompt_style": prompt_style,
        "completion_template": "Question: {instruction}\nAnswer:",
        "score_context": score_context,
    }


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("prompt_style,score_context", STYLES)
def test_position_zero_is_never_scored(tokenizer, prompt_style, score_context):
    cfg = model_cfg(prompt_style, score_context)
    for response in (RESPONSE, "x"):
        tokens = scored_tokens(tokenizer, cfg, INSTRUCTION, response, max_length=256)
        assert tokens.score_start >= 1
        assert tokens.input_ids[0] == tokenizer.bos_token_id  # SmolLM2's BOS (<|im_start|>) opens every sequence
    with pytest.raises(ConfigError, match="empty response"):  # nothing to score: a clear error, not a NaN later
        scored_tokens(tokenizer, cfg, INSTRUCTION, "", max_length=256)


@pytest.mark.parametrize("prompt_style,score_context", STYLES)
def test_scored_span_is_exactly_the_response(tokenizer, prompt_style, score_context):
    cfg = model_cfg(prompt_style, score_context)
    tokens = scored_tokens(tokenizer, cfg, INSTRUCTION, RESPONSE, max_length=256)
    body = tokenizer(RESPONSE, add_special_tokens=False).input_ids
    assert tokens.input_ids[tokens.score_start :] == body
    prefix = tokens.input_ids[: tokens.score_start]
    if score_context == "bare_response":
        assert prefix == [tokenizer.bos_token_id]
    else:
        assert prefix == prompt_ids(tokenizer, cfg, INSTRUCTION)
        assert len(prefix) > 1
        assert tokenizer.decode(prefix).find(INSTRUCTION) >= 0  # the instruction is context, not scored


def test_prompt_context_uses_the_chat_template(tokenizer):
    cfg = model_cfg("chat", "prompt")
    text = steering_prompt(tokenizer, cfg, INSTRUCTION)
    assert text.startswith("<|im_start|>")
    assert text.endswith("<|im_start|>assistant\n")
    ids = prompt_ids(tokenizer, cfg, INSTRUCTION)
    assert ids.count(tokenizer.bos_token_id) >= 2  # the template's own <|im_start|>; no extra BOS prepended
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id


def test_completion_prompt_gets_a_bos(tokenizer):
    cfg = model_cfg("completion", "prompt")
    ids = prompt_ids(tokenizer, cfg, INSTRUCTION)
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids[1:]) == f"Question: {INSTRUCTION}\nAnswer:"


def test_truncation_keeps_score_start(tokenizer):
    cfg = model_cfg("chat", "bare_response")
    tokens = scored_tokens(tokenizer, cfg, INSTRUCTION, RESPONSE * 20, max_length=16)
    assert len(tokens.input_ids) == 16
    assert tokens.score_start == 1


def test_unknown_score_context(tokenizer):
    cfg = model_cfg("chat", "bare_response")
    cfg["score_context"] = "everything"
    with pytest.raises(ConfigError, match="score_context"):
        scored_tokens(tokenizer, cfg, INSTRUCTION, RESPONSE, max_length=64)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu")


@pytest.mark.parametrize("score_context", ["bare_response", "prompt"])
def test_activations_exclude_the_prefix(tiny, score_context):
    model, tokenizer = tiny
    cfg = model_cfg("chat", score_context)
    layer = 2
    inputs = [INSTRUCTION, "Say hi.", "List three fruits, please, with a short reason for each one."]
    outputs = [RESPONSE, "Hi!", "Apples, because they are crisp. Pears. Plums, since they are sweet."]
    # batch_size 2: rows of different lengths share a right-padded batch
    acts = activations_for(model, tokenizer, cfg, layer, inputs, outputs, batch_size=2, max_length=256)
    assert len(acts) == len(inputs)
    for instruction, response, got in zip(inputs, outputs, acts):
        tokens = scored_tokens(tokenizer, cfg, instruction, response, max_length=256)
        ids = torch.tensor([tokens.input_ids])
        with torch.no_grad():
            full = residual_after_block(model, layer, ids, torch.ones_like(ids))[0]
        assert got.shape == (len(tokens.input_ids) - tokens.score_start, model.config.hidden_size)
        assert got.shape[0] == len(tokenizer(response, add_special_tokens=False).input_ids)
        torch.testing.assert_close(got, full[tokens.score_start :], atol=1e-5, rtol=0)
        # the sink at position 0 is not among the rows
        assert not any(torch.allclose(row, full[0], atol=1e-4) for row in got)
