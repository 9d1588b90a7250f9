"""LoReFT, LoRA and SFT on the tiny Llama (embeddings tied, as in SmolLM2): trained on responses
that are a planted phrase, they make that phrase likely on held-out instructions, and they leave
the shared model exactly as it was after training and after steering."""

from __future__ import annotations

from contextlib import nullcontext

import pandas as pd
import pytest
import torch
import yaml

from interpflow.artifacts import read_tensors, write_tensors
from interpflow.methods.data import ModelHandle, TrainingData
from interpflow.methods.lora import LoRA, adapter_tensors, lora_config
from interpflow.methods.loreft import LoReFT, Positions
from interpflow.methods.sft import SFT
from interpflow.models.formatting import prompt_ids
from interpflow.models.generation import decode, generate
from interpflow.models.loading import load_model
from interpflow.models.training import lm_batches, response_logprobs, tokenize_pairs

CLASSES = {"loreft": LoReFT, "lora": LoRA, "sft": SFT}
LAYER = 2
PHRASES = {0: "Purple zebras juggle quietly.", 1: "Seven copper owls whistle at dawn."}
TRAIN_INSTRUCTIONS = [
    "Describe a rainy afternoon.", "What is the capital of France?", "Give me a tip for cooking rice.",
    "Write a short poem about trees.", "How do magnets work?", "Name three colours.",
    "Explain what a verb is.", "Suggest a name for a cat.", "Why is the sky blue?",
    "Summarise the plot of a fairy tale.", "What should I pack for a hike?", "How many legs does a spider have?",
]
HELD_OUT = ["Tell me about your weekend.", "What is a good breakfast?", "How do birds fly?", "List two sports."]
# The tiny model is random: it needs more and larger steps than the pretrained demo model.
TINY = {"loreft": {"lr": 0.02, "steps": 24}, "lora": {"lr": 0.02, "steps": 24}, "sft": {"lr": 0.001, "steps": 16}}
GAIN = 2.0  # nats per response token that steering must add to the planted phrase
# A random model's logits are tiny (|embedding row| ~ 0.16): no edit before the final norm could
# make any token likely. Scaling the final norm gives the head a trained model's range of logits.
HEAD_SCALE = 10.0


def shipped_cfg(repo_root, name: str) -> dict:
    return yaml.safe_load((repo_root / "config" / "method" / f"{name}.yaml").read_text())


def tiny_cfg(repo_root, name: str, **changes) -> dict:
    return {**shipped_cfg(repo_root, name), **TINY[name], **changes}


@pytest.fixture(scope="module")
def handle(tiny_model_dir, tiny_model_cfg) -> ModelHandle:
    torch.manual_seed(0)
    model, tokenizer = load_model(tiny_model_dir, device="cpu")
    model.lm_head.weight = model.model.embed_tokens.weight  # tie, as SmolLM2 does
    model.config.tie_word_embeddings = True
    with torch.no_grad():
        model.model.norm.weight.mul_(HEAD_SCALE)
    return ModelHandle(model, tokenizer, tiny_model_cfg, LAYER)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert not any(p.requires_grad for p in model.parameters())


def training_data(handle, concept_ids=(0, 1)) -> TrainingData:
    rows = []
    for cid in concept_ids:
        for i, instruction in enumerate(TRAIN_INSTRUCTIONS):
            rows.append({"concept_id": cid, "input": instruction, "output": PHRASES[cid], "label": 1,
                         "category": "positive", "genre": "text"})
            rows.append({"concept_id": cid, "input": instruction, "output": f"A plain answer number {i}.",
                         "label": 0, "category": "negative", "genre": "text"})
    examples = pd.DataFrame(rows).reset_index(names="example_id")
    concepts = pd.DataFrame({"concept_id": list(concept_ids), "concept": [f"c{c}" for c in concept_ids],
                             "genre": "text"})
    return TrainingData(concepts=concepts, examples=examples, model=handle, seed=0)


def plan(concept_rows: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"concept_row": concept_rows, "concept_id": concept_rows, "factor": float("nan"),
                         "strength": float("nan")})


def phrase_logprobs(handle, responses: list[str], instructions: list[str], steering=None) -> torch.Tensor:
    """Mean log-probability per response token of each (instruction, response), in order, inside `steering`
    (LoReFT's context is told which positions are the prompt: it edits prompt positions only)."""
    pairs = tokenize_pairs(handle.tokenizer, handle.cfg, instructions, responses, 48)
    batch = lm_batches(pairs, len(pairs), handle.tokenizer.pad_token_id)[0]
    with torch.no_grad(), (steering or nullcontext()) as where:
        if isinstance(where, Positions):
            where.fix(batch.mask.bool() & ~batch.response)
        logprobs = response_logprobs(handle.model, batch)
    return logprobs.sum(-1) / batch.response.sum(-1)


def gain(method, tensors, handle, concept_row: int, phrase: str) -> float:
    """How much steering with one concept raises the phrase's mean token log-probability (held out)."""
    responses = [phrase] * len(HELD_OUT)
    plain = phrase_logprobs(handle, responses, HELD_OUT)
    steered = phrase_logprobs(handle, responses, HELD_OUT,
                              method.steering(tensors, handle.model, LAYER, plan([concept_row] * len(HELD_OUT))))
    return float((steered - plain).mean())


@pytest.fixture(scope="module")
def trained(handle, repo_root):
    """Each method trained on both concepts; the shared model's state before and after."""
    out = {}
    for name, cls in CLASSES.items():
        before = snapshot(handle.model)
        method = cls(tiny_cfg(repo_root, name))
        tensors = method.train(training_data(handle))
        out[name] = (method, tensors, before, snapshot(handle.model))
    return out


@pytest.mark.parametrize("name", list(CLASSES))
def test_config_builds(repo_root, name):
    cfg = shipped_cfg(repo_root, name)
    assert cfg["name"] == name
    method = CLASSES[name](cfg)
    assert method.name == name and method.needs == "model"
    assert method.detects is False and method.steers is True and method.uses_factor is False
    assert method.batch_key == ("concept_id" if name == "sft" else None)


@pytest.mark.parametrize("name", list(CLASSES))
def test_training_leaves_the_shared_model_unchanged(trained, handle, name):
    _, _, before, after = trained[name]
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert_unchanged(handle.model, before)


@pytest.mark.parametrize("name", list(CLASSES))
def test_steering_makes_the_planted_phrase_likely(trained, handle, name):
    method, tensors, before, _ = trained[name]
    for row, cid in enumerate((0, 1)):
        assert gain(method, tensors, handle, row, PHRASES[cid]) > GAIN
    assert_unchanged(handle.model, before)  # steering contexts restore everything on exit


@pytest.mark.parametrize("name", list(CLASSES))
def test_without_the_optimizer_step_there_is_no_gain(handle, repo_root, monkeypatch, name):
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *args, **kwargs: None)
    method = CLASSES[name](tiny_cfg(repo_root, name, steps=3))
    tensors = method.train(training_data(handle, concept_ids=(0,)))
    assert gain(method, tensors, handle, 0, PHRASES[0]) < GAIN / 2


@pytest.mark.parametrize("name", list(CLASSES))
def test_training_is_seeded(handle, repo_root, name):
    first, second = (CLASSES[name](tiny_cfg(repo_root, name, steps=2)).train(training_data(handle, (1,)))
                     for _ in range(2))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def greedy_under_steering(method, tensors, handle, prompt: list[int], generated: list[int], row: int) -> list[int]:
    """The greedy next token at each generated position, recomputed without a KV cache, batch of one."""
    ids = torch.tensor([prompt + generated])
    with torch.no_grad(), method.steering(tensors, handle.model, LAYER, plan([row])) as where:
        if isinstance(where, Positions):
            where.fix(torch.tensor([[True] * len(prompt) + [False] * len(generated)]))
        logits = handle.model(input_ids=ids, use_cache=False).logits[0]
    return logits[len(prompt) - 1 : len(prompt) - 1 + len(generated)].argmax(-1).tolist()


@pytest.mark.parametrize("name", list(CLASSES))
def test_generation_under_steering(trained, handle, name):
    """generate() with the method's intervene: every prompt and generated position is steered by the
    row's own concept (cached decoding equals recomputation), and the text is made of the phrase."""
    method, tensors, before, _ = trained[name]
    tokenizer = handle.tokenizer
    rows = plan([0, 1, 0, 1])
    prompts = [prompt_ids(tokenizer, handle.cfg, text) for text in (HELD_OUT[0], HELD_OUT[0], HELD_OUT[1], HELD_OUT[1])]
    groups = rows[method.batch_key].tolist() if method.batch_key else None

    def intervene(batch_rows: list[int]):
        return method.steering(tensors, handle.model, LAYER, rows.iloc[batch_rows])

    steered = generate(handle.model, tokenizer, prompts, intervene, 10, 4, groups=groups)
    plain = generate(handle.model, tokenizer, prompts, None, 10, 4)
    for i, tokens in enumerate(steered):
        assert tokens and tokens == greedy_under_steering(method, tensors, handle, prompts[i], tokens, i % 2)
    phrase_tokens = {c: set(tokenizer(PHRASES[c], add_special_tokens=False).input_ids) for c in PHRASES}

    def phrase_share(generations: list[list[int]]) -> float:
        hits = [t in phrase_tokens[c] for tokens, c in zip(generations, rows["concept_id"]) for t in tokens]
        return sum(hits) / max(1, len(hits))

    assert phrase_share(steered) >= 0.25 and phrase_share(plain) == 0
    if name == "sft":  # full fine-tuning has the capacity to say the phrase itself
        texts = decode(tokenizer, steered)
        assert all(text.startswith(PHRASES[c]) for text, c in zip(texts, rows["concept_id"]))
    assert_unchanged(handle.model, before)


@pytest.mark.parametrize("name", ["loreft", "lora"])
def test_a_batch_may_mix_concepts(trained, handle, name):
    """Each row of a mixed batch is steered by its own concept, exactly as in a batch of its own."""
    method, tensors, _, _ = trained[name]
    instructions, responses = [HELD_OUT[0], HELD_OUT[1]], [PHRASES[0], PHRASES[1]]
    with method.steering(tensors, handle.model, LAYER, plan([0, 1])):
        mixed = phrase_logprobs(handle, responses, instructions)
    for i, row in enumerate((0, 1)):
        with method.steering(tensors, handle.model, LAYER, plan([row])):
            alone = phrase_logprobs(handle, responses[i : i + 1], instructions[i : i + 1])
        assert torch.allclose(mixed[i], alone[0], atol=1e-4)
    # and the concepts differ: each raises its own phrase more than the other concept's
    assert gain(method, tensors, handle, 0, PHRASES[0]) > gain(method, tensors, handle, 1, PHRASES[0])


def test_lora_hooks_equal_the_peft_model(trained, handle, repo_root):
    from peft import get_peft_model

    method, tensors, before, _ = trained["lora"]
    model = handle.model
    paths = method.targets(model, LAYER)
    assert paths == [f"model.layers.{i}.self_attn.o_proj" for i in (0, 1, 2)]  # floor of 0.5, 1, 1.5, 2
    batch = lm_batches(tokenize_pairs(handle.tokenizer, handle.cfg, HELD_OUT, [PHRASES[0]] * 4, 48), 4,
                       handle.tokenizer.pad_token_id)[0]
    peft_model = get_peft_model(model, lora_config(method.cfg, paths))
    try:
        with torch.no_grad():
            for path in paths:
                layer = peft_model.base_model.model.get_submodule(path)
                layer.lora_A["default"].weight.copy_(tensors[f"lora_A.{path}"][1])
                layer.lora_B["default"].weight.copy_(tensors[f"lora_B.{path}"][1])
            assert all(torch.equal(t, tensors[k][1]) for k, t in adapter_tensors(peft_model, paths).items())
            peft_model.eval()
            expected = response_logprobs(model, batch)
    finally:
        peft_model.unload()
    assert not hasattr(model, "peft_config")
    assert not any("lora" in name for name, _ in model.named_modules())
    assert_unchanged(model, before)
    with torch.no_grad(), method.steering(tensors, model, LAYER, plan([1] * 4)):
        hooked = response_logprobs(model, batch)
    assert torch.allclose(hooked, expected, atol=1e-5)
    assert not torch.allclose(expected, response_logprobs(model, batch).detach(), atol=1e-2)


def test_sft_artifact_stores_tied_weights_once_and_swaps_strictly(trained, handle, tmp_path):
    method, tensors, before, _ = trained["sft"]
    model = handle.model
    names = [name for name, _ in model.named_parameters()]
    assert sorted(tensors) == sorted(names) and "lm_head.weight" not in tensors
    write_tensors(tensors, tmp_path / "sft.safetensors")  # no shared storage: safetensors accepts it
    loaded = read_tensors(tmp_path / "sft.safetensors")
    with method.steering(loaded, model, LAYER, plan([1, 1])):
        assert model.lm_head.weight is model.model.embed_tokens.weight
        assert torch.equal(model.lm_head.weight, loaded["model.embed_tokens.weight"][1])
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="missing"):
        with method.steering({k: v for k, v in loaded.items() if "norm" not in k}, model, LAYER, plan([0])):
            pass
    with pytest.raises(ValueError, match="one concept"):
        method.steering(loaded, model, LAYER, plan([0, 1]))
    assert_unchanged(model, before)


def test_sft_selects_a_subset_of_concepts(repo_root):
    assert SFT({**shipped_cfg(repo_root, "sft"), "max_concepts": 2}).selected_concepts([5, 3, 9]) == [5, 3]
    assert SFT({**shipped_cfg(repo_root, "sft"), "max_concepts": None}).selected_concepts([5, 3, 9]) == [5, 3, 9]
    assert LoRA(shipped_cfg(repo_root, "lora")).selected_concepts([5, 3, 9]) == [5, 3, 9]


def test_loreft_edits_the_first_and_last_five_prompt_tokens():
    """AxBench's f5+l5: after each row's first token, min(5, n // 2) tokens at each end of its n prompt tokens;
    left padding and the response are never edited."""
    from interpflow.methods.loreft import edge_positions

    prompt = torch.zeros(3, 16, dtype=torch.bool)
    prompt[0, 3:16] = True   # 13 prompt tokens after 3 pads: the first is skipped, 12 remain
    prompt[1, 0:5] = True    # 5 tokens then response: 4 remain, 2 at each end (all of them)
    prompt[2, 10:14] = True  # 4 tokens: 3 remain, 1 at each end
    edited = edge_positions(prompt)
    assert edited[0].nonzero().flatten().tolist() == [4, 5, 6, 7, 8, 11, 12, 13, 14, 15]
    assert edited[1].nonzero().flatten().tolist() == [1, 2, 3, 4]
    assert edited[2].nonzero().flatten().tolist() == [11, 13]
