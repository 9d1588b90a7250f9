"""Residual capture and steering hooks on a real (tiny, random) Llama."""

from __future__ import annotations

import math
import pytest
import torch

from interpflow.errors import ConfigError
from interpflow.models import generation
from interpflow.models.architectures import check_layer, decoder_blocks
from interpflow.models.formatting import prompt_ids
from interpflow.models.generation import adding, decode, generate, perplexity
from interpflow.models.hooks import add_to_residual, clamp_residual, residual_after_block
from interpflow.models.loading import load_model

N_LAYERS = 4
D_MODEL = 64


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir, device="cpu")
    return model, tokenizer


@pytest.fixture(scope="module")
def batch(tiny):
    """Two right-padded sequences of different lengths."""
    _, tokenizer = tiny
    texts = ["The sea is calm and blue today.", "Hello there"]
    rows = [[tokenizer.bos_token_id] + tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def test_tiny_model_shape(tiny):
    model, _ = tiny
    assert model.config.model_type == "llama"
    assert len(decoder_blocks(model)) == N_LAYERS
    assert model.config.hidden_size == D_MODEL
    assert not model.training
    check_layer(model, N_LAYERS - 1)
    with pytest.raises(ConfigError, match="4 decoder blocks"):
        check_layer(model, N_LAYERS)


@pytest.mark.parametrize("layer", range(N_LAYERS))
def test_residual_matches_hidden_states(tiny, batch, layer):
    model, _ = tiny
    ids, mask = batch
    with torch.no_grad():
        captured = residual_after_block(model, layer, ids, mask)
        hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(hidden) == N_LAYERS + 1
    assert captured.shape == (ids.shape[0], ids.shape[1], D_MODEL)
    if layer < N_LAYERS - 1:
        torch.testing.assert_close(captured, hidden[layer + 1], atol=1e-5, rtol=0)
    else:
        # transformers puts the final norm's output in hidden_states[-1]; the capture is before that norm
        torch.testing.assert_close(model.model.norm(captured), hidden[layer + 1], atol=1e-5, rtol=0)
        assert not torch.allclose(captured, hidden[layer + 1], atol=1e-3)


@pytest.mark.parametrize("layer", range(N_LAYERS - 1))
def test_later_blocks_do_not_run(tiny, batch, layer):
    model, _ = tiny
    ids, mask = batch
    before = hook_ids(model)
    calls = []
    handles = [
        decoder_blocks(model)[later].register_forward_hook(lambda *_args, i=later: calls.append(i))
        for later in range(layer + 1, N_LAYERS)
    ]
    head = model.lm_head.register_forward_hook(lambda *_args: calls.append("lm_head"))
    try:
        with torch.no_grad():
            residual_after_block(model, layer, ids, mask)
    finally:
        for handle in handles:
            handle.remove()
        head.remove()
    assert calls == []
    assert hook_ids(model) == before  # the capture hook removed itself
    # the capture hook is gone: a normal forward runs every block again
    seen = []
    handle = decoder_blocks(model)[N_LAYERS - 1].register_forward_hook(lambda *_args: seen.append(1))
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    assert seen == [1]


def hook_ids(model) -> list[set]:
    """The ids of the forward hooks on each block (transformers keeps some of its own there)."""
    return [set(block._forward_hooks) for block in decoder_blocks(model)]


def test_zero_vector_leaves_logits_unchanged(tiny, batch):
    model, _ = tiny
    ids, mask = batch
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        with add_to_residual(model, 1, torch.zeros(ids.shape[0], D_MODEL)):
            steered = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(plain, steered)


def test_nonzero_vector_changes_logits_and_is_removed(tiny, batch):
    model, _ = tiny
    ids, mask = batch
    vectors = torch.randn(ids.shape[0], D_MODEL, generator=torch.Generator().manual_seed(0)) * 4
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        with add_to_residual(model, 1, vectors):
            steered = model(input_ids=ids, attention_mask=mask).logits
        after = model(input_ids=ids, attention_mask=mask).logits
    assert (steered - plain).abs().amax(dim=-1).min() > 1e-3  # every position of every row moved
    assert torch.equal(after, plain)  # the hook is removed on exit


def test_hook_removed_when_the_body_raises(tiny):
    model, _ = tiny
    before = hook_ids(model)
    with pytest.raises(RuntimeError):
        with add_to_residual(model, 2, torch.ones(1, D_MODEL)):
            assert hook_ids(model) != before
            raise RuntimeError
    assert hook_ids(model) == before


def capture_outputs(model, layer: int) -> tuple[list[torch.Tensor], object]:
    """Record every output of block `layer` (registered before any steering hook, so it sees the raw output)."""
    outputs: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        outputs.append(hidden.detach().clone())

    return outputs, decoder_blocks(model)[layer].register_forward_hook(hook)


def capture_inputs(model, layer: int) -> tuple[list[torch.Tensor], object]:
    """Record the hidden states entering block `layer` (what the steered block before it produced)."""
    inputs: list[torch.Tensor] = []

    def hook(_module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        inputs.append(hidden.detach().clone())

    return inputs, decoder_blocks(model)[layer].register_forward_pre_hook(hook, with_kwargs=True)


def test_vector_added_at_every_position(tiny, batch):
    model, _ = tiny
    ids, mask = batch
    layer = 1
    vectors = torch.randn(ids.shape[0], D_MODEL, generator=torch.Generator().manual_seed(1))
    received, handle = capture_inputs(model, layer + 1)
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
            with add_to_residual(model, layer, vectors):
                model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    plain, steered = received
    # block L's own output does not depend on the steering; block L+1 receives it plus the row's vector
    expected = plain + vectors[:, None, :]
    torch.testing.assert_close(steered, expected, atol=1e-5, rtol=0)


def test_vector_added_during_cached_generation(tiny):
    model, tokenizer = tiny
    layer = 2
    cfg = {"name": "tiny", "prompt_style": "chat", "completion_template": "{instruction}\n"}
    prompt = prompt_ids(tokenizer, cfg, "Write a sentence about the sea.")
    vector = torch.randn(1, D_MODEL, generator=torch.Generator().manual_seed(2)) * 3
    before = hook_ids(model)
    outputs, out_handle = capture_outputs(model, layer)
    inputs, in_handle = capture_inputs(model, layer + 1)
    try:
        generate(model, tokenizer, [prompt], intervene=adding(model, layer, vector), max_new_tokens=3, batch_size=1)
    finally:
        out_handle.remove()
        in_handle.remove()
    # prefill over the whole prompt, then one token per cached decoding step
    assert [o.shape[1] for o in outputs] == [len(prompt), 1, 1]
    assert len(inputs) == len(outputs)
    for raw, received in zip(outputs, inputs):
        torch.testing.assert_close(received - raw, vector[:, None, :].expand_as(raw), atol=1e-5, rtol=0)
    assert hook_ids(model) == before


def test_batched_generation_matches_one_at_a_time(tiny):
    model, tokenizer = tiny
    cfg = {"name": "tiny", "prompt_style": "chat", "completion_template": "{instruction}\n"}
    instructions = [
        "Hi",
        "Tell me a long story about a dragon, a knight and a very old forest, please.",
        "What is two plus two?",
        "Name three colours of the rainbow.",
    ]
    prompts = [prompt_ids(tokenizer, cfg, i) for i in instructions]
    assert len({len(p) for p in prompts}) == len(prompts)  # all lengths differ: left padding is exercised
    single = decode(tokenizer, generate(model, tokenizer, prompts, intervene=None, max_new_tokens=5, batch_size=1))
    batched = decode(tokenizer, generate(model, tokenizer, prompts, intervene=None, max_new_tokens=5, batch_size=4))
    assert single == batched
    assert all(text for text in single)
    assert len(set(single)) > 1  # the outputs are not all the same text (order is kept per prompt)


def test_batched_steered_generation_matches_one_at_a_time(tiny):
    """Each row keeps its own vector when rows are reordered by length and batched."""
    model, tokenizer = tiny
    cfg = {"name": "tiny", "prompt_style": "completion", "completion_template": "Question: {instruction}\nAnswer:"}
    instructions = ["A long question about oceans, rivers and lakes of the world?", "Short?", "Medium length one?"]
    prompts = [prompt_ids(tokenizer, cfg, i) for i in instructions]
    vectors = torch.randn(3, D_MODEL, generator=torch.Generator().manual_seed(3)) * 8
    single = decode(tokenizer, generate(model, tokenizer, prompts, intervene=adding(model, 1, vectors), max_new_tokens=4, batch_size=1))
    batched = decode(tokenizer, generate(model, tokenizer, prompts, intervene=adding(model, 1, vectors), max_new_tokens=4, batch_size=3))
    assert single == batched
    unsteered = decode(tokenizer, generate(model, tokenizer, prompts, intervene=None, max_new_tokens=4, batch_size=3))
    assert unsteered != batched


def test_perplexity_is_exact_and_independent_of_batching(tiny):
    """Left-padded batches with kept-logits-only give the same perplexity as a plain forward pass."""
    model, tokenizer = tiny
    cfg = {"name": "tiny", "prompt_style": "chat", "completion_template": "{instruction}\n"}
    prompts = [prompt_ids(tokenizer, cfg, i) for i in ["Hi", "Tell me about the weather in spring.", "Why?"]]
    generations = [tokenizer("a b c", add_special_tokens=False).input_ids,
                   tokenizer("hello there my friend", add_special_tokens=False).input_ids,
                   tokenizer("ok", add_special_tokens=False).input_ids]
    batched = perplexity(model, prompts, generations, batch_size=3, pad_id=tokenizer.pad_token_id)
    single = perplexity(model, prompts, generations, batch_size=1, pad_id=tokenizer.pad_token_id)
    for prompt, gen, value in zip(prompts, generations, single):
        ids = torch.tensor([prompt + gen])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        token_lp = logprobs[len(prompt) - 1 :].gather(-1, ids[0, len(prompt) :, None])[..., 0]
        assert abs(value - math.exp(-token_lp.mean().item())) < 1e-3 * value
    assert all(abs(a - b) < 1e-3 * b for a, b in zip(batched, single))
    with pytest.MonkeyPatch.context() as patch:  # a logits budget of one row's logits: batches of one
        one_row = 4 * model.get_output_embeddings().weight.shape[0] * (max(map(len, generations)) + 1)
        patch.setattr(generation, "LOGITS_BUDGET_BYTES", one_row)
        assert perplexity(model, prompts, generations, batch_size=3, pad_id=tokenizer.pad_token_id) == single
    assert perplexity(model, prompts[:1], [[]], batch_size=1, pad_id=tokenizer.pad_token_id)[0] != perplexity(
        model, prompts[:1], [[]], batch_size=1, pad_id=tokenizer.pad_token_id)[0]  # empty generation: NaN


def test_clamping_sets_each_rows_latent(tiny):
    """After clamp_residual, every position's latent equals its row's strength (linear and gated latents)."""
    model, tokenizer = tiny
    layer = 1
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(10, 1000, (2, 6), generator=g)
    mask = torch.ones_like(ids)
    directions = torch.nn.functional.normalize(torch.randn(2, D_MODEL, generator=g), dim=-1)
    strength = torch.tensor([5.0, -2.0])
    captured = []
    handle = decoder_blocks(model)[layer + 1].register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    try:
        with clamp_residual(model, layer, directions, strength, directions, torch.zeros(2), torch.full((2,), float("-inf"))):
            model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    latent = torch.einsum("btd,bd->bt", captured[0], directions)
    torch.testing.assert_close(latent, strength[:, None].expand_as(latent), atol=1e-4, rtol=0)


def test_generation_batches_never_mix_groups(tiny):
    model, tokenizer = tiny
    cfg = {"name": "tiny", "prompt_style": "chat", "completion_template": "{instruction}\n"}
    prompts = [prompt_ids(tokenizer, cfg, text) for text in ["a", "bb bb", "c", "dd dd dd", "e"]]
    groups = ["x", "y", "x", "y", "x"]
    seen = []

    def intervene(rows):
        seen.append(list(rows))
        return add_to_residual(model, 1, torch.zeros(len(rows), D_MODEL))

    generate(model, tokenizer, prompts, intervene, max_new_tokens=2, batch_size=8, groups=groups)
    assert sorted(i for batch in seen for i in batch) == list(range(5))
    assert all(len({groups[i] for i in batch}) == 1 for batch in seen)
    assert len(seen) == 2
