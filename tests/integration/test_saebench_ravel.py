"""SAEBench's RAVEL: the latent swap at the city token on the tiny Llama (an identity SAE with every
latent masked is exactly a residual patch from the source; with none it changes nothing), the
mask's training lowers its loss, and the pairs and the completion check follow SAEBench."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interpflow.models.generation import _left_pad
from interpflow.models.hooks import edit_residual, residual_after_block
from interpflow.models.loading import load_model
from interpflow.saebench.ravel import LatentSwap, attribute_pairs, completion_matches, positions
from interpflow.saebench.ravel_data import ATTRIBUTES, CITIES, ravel_rows

LAYER = 1


def identity_sae(d: int) -> dict[str, torch.Tensor]:
    eye = torch.eye(d)
    return {"W_enc": torch.cat([eye, -eye], dim=1), "b_enc": torch.zeros(2 * d), "W_dec": torch.cat([eye, -eye]),
            "b_dec": torch.zeros(d), "threshold": torch.zeros(2 * d)}


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir, "float32", device="cpu")
    frame = pd.DataFrame(ravel_rows())
    frame = frame[frame["template_id"] == 0].reset_index(drop=True)
    bos = [tokenizer.bos_token_id]
    frame["input_ids"] = [bos + tokenizer(t, add_special_tokens=False).input_ids for t in frame["text"]]
    frame["entity_pos"] = [len(bos + tokenizer(t, add_special_tokens=False).input_ids) - 1 for t in frame["entity_text"]]
    frame["first_token"] = 7
    frame["known"] = True
    return model, tokenizer, frame


def patched_logits(model, tokenizer, frame, base: int, source: int) -> torch.Tensor:
    """The base prompt's last logits with its city-token residual replaced by the source's: by hand."""
    s_ids = torch.tensor([frame.loc[source, "input_ids"]])
    source_resid = residual_after_block(model, LAYER, s_ids, torch.ones_like(s_ids))[0, frame.loc[source, "entity_pos"]]
    at = frame.loc[base, "entity_pos"]

    def edit(hidden):
        if hidden.shape[1] == 1:
            return hidden
        hidden = hidden.clone()
        hidden[0, at] = source_resid
        return hidden

    b_ids = torch.tensor([frame.loc[base, "input_ids"]])
    with edit_residual(model, LAYER, edit):
        return model(input_ids=b_ids, use_cache=False).logits[0, -1]


def test_full_mask_is_a_residual_patch_and_empty_mask_changes_nothing(tiny):
    model, tokenizer, frame = tiny
    swap = LatentSwap(model, tokenizer, identity_sae(model.config.hidden_size), LAYER, frame)
    # cities of different token lengths, so left padding and the city position both matter
    pairs = pd.DataFrame({"base": [0, 52, 30], "source": [60, 3, 41]})
    assert len({len(frame.loc[i, "input_ids"]) for i in pairs["base"]}) > 1
    with torch.no_grad():
        swap.mask.fill_(5.0)
        full = swap.logits(pairs, temperature=None)
        swap.mask.fill_(-5.0)
        none = swap.logits(pairs, temperature=None)
    for row, (base, source) in enumerate(zip(pairs["base"], pairs["source"])):
        with torch.no_grad():
            expected = patched_logits(model, tokenizer, frame, base, source)
            clean_ids = torch.tensor([frame.loc[base, "input_ids"]])
            clean = model(input_ids=clean_ids, use_cache=False).logits[0, -1]
        assert torch.allclose(full[row], expected, atol=1e-4)
        assert torch.allclose(none[row], clean, atol=1e-4)
        assert not torch.allclose(expected, clean, atol=1e-3)  # the patch does change the output


def test_training_the_mask_lowers_the_loss(tiny):
    model, tokenizer, frame = tiny
    swap = LatentSwap(model, tokenizer, identity_sae(model.config.hidden_size), LAYER, frame)
    pairs = pd.DataFrame({"base": list(range(0, 20)), "source": list(range(40, 60))})
    with torch.no_grad():
        swap.mask.fill_(5.0)
        # targets the full patch produces: the mask that reaches them is "every latent"
        full = swap.logits(pairs, None)
        pairs["target"] = full.argmax(-1).numpy()
        full_loss = torch.nn.functional.cross_entropy(full, torch.tensor(pairs["target"].to_numpy()))
        swap.mask.zero_()
    target = torch.tensor(pairs["target"].to_numpy())
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(swap.logits(pairs, None), target)  # mask 0: nothing swapped
    swap.train(pairs, {"learning_rate": 0.05, "epochs": 4, "batch_size": 10, "seed": 0})
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(swap.logits(pairs, None), target)
    print(float(before), float(after))
    assert after < before - 0.2 * (before - full_loss)


def test_pairs_differ_in_value_and_balance_cause_with_isolation():
    frame = pd.DataFrame(ravel_rows()).assign(known=True, first_token=0)
    pairs = attribute_pairs(frame, "Country", {"pairs_per_attribute": 30, "train_fraction": 0.7}, np.random.default_rng(0))
    cause, iso = pairs[pairs["kind"] == "cause"], pairs[pairs["kind"] == "isolation"]
    assert len(cause) == len(iso) == 30
    assert (frame.loc[cause["base"], "attribute"] == "Country").all()
    assert (frame.loc[cause["base"], "label"].to_numpy() != frame.loc[cause["source"], "label"].to_numpy()).all()
    assert (cause["target_value"].to_numpy() == frame.loc[cause["source"], "label"].to_numpy()).all()
    assert (frame.loc[iso["base"], "attribute"] != "Country").all()
    assert (iso["target_value"].to_numpy() == frame.loc[iso["base"], "label"].to_numpy()).all()
    assert (pairs["split"] == "train").sum() == 42


def test_completion_check_is_saebench_prefix_rule():
    assert completion_matches("France", " France, a country in Europe")
    assert completion_matches("United States", "United")  # a completion cut short still counts
    assert not completion_matches("France", " Germany")
    assert not completion_matches("France", "")
    assert set(ATTRIBUTES) == {"Country", "Continent", "Language"} and len(CITIES) >= 60


def test_left_padded_positions_start_at_zero():
    _, attention = _left_pad([[1, 2, 3], [4]], 0)
    assert positions(attention).tolist() == [[0, 1, 2], [0, 0, 0]]
