"""SAEBench's unlearning: latent selection (retain threshold, ranking by forget firing rate), the
retain-accuracy filter, the clamp (SAEBench's formula), cloze scoring with shared contexts equal to
scoring each choice on its own, and on the tiny Llama a planted SAE whose latent fires only on the
forget questions' marker word unlearns them (score > 0), while the same latent also firing on the
retain corpus is never selected (score 0)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from interpflow.artifacts import read_parquet, read_tensors
from interpflow.models.hooks import edit_residual, residual_after_block
from interpflow.models.loading import load_model
from interpflow.sae.format import decode, encode
from interpflow.saebench.unlearning import clamp, settings, top_latents, unlearning, unlearning_score
from interpflow.saebench.unlearning_data import CORPORA, LETTERS, mcq_rows
from interpflow.saebench.unlearning_mcq import DEFAULTS, build_prompts, score_prompts, unlearning_corpus, unlearning_questions

LAYER = 1
MARKER = " Kepler"  # one token of SmolLM2's tokenizer; only the forget texts hold it


def test_selection_keeps_latents_under_the_retain_threshold_ranked_by_forget_rate():
    forget = np.array([0.9, 0.5, 0.0, 0.3, 0.5, 0.7])
    retain = np.array([0.5, 0.0, 0.0, 0.005, 0.0, 0.01])
    # 0 and 5 fire too often on the retain corpus (5 sits exactly at the threshold); 2 never fires on forget
    assert top_latents(forget, retain, 0.01) == [1, 4, 3]
    assert top_latents(forget, retain, 0.001) == [1, 4]
    assert top_latents(forget, retain, 0.6) == [0, 5, 1, 4, 3]
    plan = settings(forget, retain, {"retain_thresholds": [0.001, 0.01], "n_features_list": [1, 2], "multipliers": [25, 50]})
    assert len(plan) == 8
    assert [s["latents"] for s in plan if s["retain_threshold"] == 0.01 and s["multiplier"] == 25] == [[1], [1, 4]]


def test_score_takes_the_best_forget_accuracy_among_settings_that_keep_retain():
    table = pd.DataFrame({"forget_accuracy": [0.9, 0.2, 0.6, 0.5], "retain_accuracy": [1.0, 0.95, 0.99, 0.989]})
    # 0.2 and 0.5 cost too much retain accuracy; 0.6 sits exactly at the minimum and counts
    assert unlearning_score(table, 0.99) == pytest.approx(0.4)
    assert unlearning_score(table, 0.5) == pytest.approx(0.8)
    assert unlearning_score(table.iloc[[1]], 0.99) == 0.0


def test_clamp_sets_firing_latents_negative_and_keeps_the_sae_error():
    torch.manual_seed(0)
    d, n = 16, 12
    sae = {"W_enc": torch.randn(d, n), "b_enc": torch.randn(n) * 0.5, "W_dec": torch.randn(n, d),
           "b_dec": torch.randn(d) * 0.1, "threshold": torch.zeros(n)}
    hidden = torch.randn(2, 7, d)
    clampable = torch.ones(2, 7, dtype=torch.bool)
    clampable[:, 0] = False
    latents = [2, 5, 7]
    edited = clamp(sae, latents, 50)(clampable)(hidden)
    # SAEBench: error + decode(z with its firing selected latents set to -multiplier), first token untouched
    z = encode(sae, hidden)
    z_new = z.clone()
    z_new[..., latents] = torch.where(z[..., latents] > 0, torch.tensor(-50.0), z[..., latents])
    expected = hidden - decode(sae, z) + decode(sae, z_new)
    assert torch.allclose(edited[:, 1:], expected[:, 1:], atol=1e-4)
    assert torch.equal(edited[:, 0], hidden[:, 0])
    assert (z[:, 1:, latents] > 0).any() and not torch.allclose(edited, hidden)


def test_letter_prompts_put_the_right_answer_under_the_right_letter(tiny_model_dir, tiny_model_cfg):
    model, tokenizer = load_model(tiny_model_dir, "float32", device="cpu")
    frame = mcq_rows().iloc[[0, 61]].reset_index(drop=True)
    cfg = {**DEFAULTS, "answer_format": "letter"}
    prompts, items = build_prompts(tokenizer, tiny_model_cfg, frame, cfg, all_orders=True)
    assert len(prompts) == 48 and items["order"].nunique() == 24
    for prompt, item in zip(prompts, items.to_dict("records")):
        row = frame.iloc[item["question"]]
        text = tokenizer.decode(prompt.ids)
        assert f"\n{LETTERS[item['right']]}. {row['choices'][row['answer']]}" in text
        assert text.endswith("Answer: (")
    # each letter's score is the larger logit of "A" and " A" at the last position
    scores = score_prompts(model, tokenizer, prompts[:5], 2)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompts[3].ids])).logits[0, -1]
    letters = [[tokenizer(p + x, add_special_tokens=False).input_ids[0] for x in LETTERS] for p in ("", " ")]
    assert np.allclose(scores[3], torch.maximum(logits[letters[0]], logits[letters[1]]).numpy(), atol=1e-4)


def full_sequence_scores(model, tokenizer, prompts, edit=None) -> np.ndarray:
    """Each choice's mean log-probability, each context + choice run on its own (no padding, no cache)."""
    out = np.zeros((len(prompts), 4))
    for p, prompt in enumerate(prompts):
        for c, choice in enumerate(prompt.choices):
            ids = torch.tensor([prompt.ids + list(choice)])
            with torch.no_grad():
                if edit is None:
                    logits = model(input_ids=ids, use_cache=False).logits[0]
                else:
                    clampable = torch.arange(ids.shape[1])[None] > 0
                    with edit_residual(model, LAYER, edit(clampable)):
                        logits = model(input_ids=ids, use_cache=False).logits[0]
            n = len(choice)
            logprobs = logits[-n - 1 : -1].log_softmax(-1)
            out[p, c] = float(logprobs.gather(-1, torch.tensor(choice)[:, None]).mean())
    return out


def test_cloze_scores_with_shared_contexts_equal_scoring_each_choice_alone(tiny_model_dir, tiny_model_cfg):
    model, tokenizer = load_model(tiny_model_dir, "float32", device="cpu")
    frame = mcq_rows().iloc[[0, 5, 22, 70, 100, 120]].reset_index(drop=True)
    prompts, _ = build_prompts(tokenizer, tiny_model_cfg, frame, DEFAULTS, all_orders=False)
    assert len({len(p.ids) for p in prompts}) > 1 and max(len(c) for p in prompts for c in p.choices) > 2
    d = model.config.hidden_size
    torch.manual_seed(0)
    sae = {"W_enc": torch.randn(d, 32) / d**0.5, "b_enc": torch.zeros(32), "W_dec": torch.randn(32, d) / d**0.5,
           "b_dec": torch.zeros(d), "threshold": torch.zeros(32)}
    for edit in (None, clamp(sae, [0, 3, 9], 5.0)):
        shared = score_prompts(model, tokenizer, prompts, 4, LAYER, edit)
        alone = full_sequence_scores(model, tokenizer, prompts, edit)
        assert np.allclose(shared, alone, atol=1e-4)
    assert not np.allclose(score_prompts(model, tokenizer, prompts, 4), shared, atol=1e-3)  # the clamp does change them


PLANETS = ["Mars", "Venus", "Earth", "Jupiter"]  # one token each: the last context token alone picks the answer


def write_marked_data(folder) -> dict:
    """Forget questions whose context ends on the marker word and whose choices are one-token planet
    names, and a forget corpus with the marker in every text; the shipped retain data as is."""
    rows = mcq_rows()
    forget = pd.DataFrame({"question": rows.loc[rows["topic"] == "forget", "question"] + MARKER})
    forget["answer"] = np.arange(len(forget)) % 4
    forget["choices"] = [PLANETS[i:] + PLANETS[:i] for i in range(len(forget))]
    forget.to_json(folder / "forget.jsonl", orient="records", lines=True)
    (folder / "forget.txt").write_text("\n".join(f"From the Kepler notes: {s}" for s in CORPORA["forget"]))
    return {"forget_questions": str(folder / "forget.jsonl"), "forget_corpus": str(folder / "forget.txt"),
            "cloze_template": "Question: {question}", "retain_thresholds": [0.001, 0.01], "n_features_list": [1, 2],
            "multipliers": [25, 200], "batch_size": 16}


def planted_sae(model, tokenizer, retain_acts: torch.Tensor, leaky: bool) -> dict:
    """Latent 0 fires on every token (dense); latent 1 reads the marker's embedding and fires on the
    marker but on no retain token (`leaky`: on a tenth of the retain tokens too); latents 2-7 never
    fire. Decoder rows are random unit directions."""
    marker = tokenizer(MARKER, add_special_tokens=False).input_ids[0]
    direction = model.get_input_embeddings().weight[marker].detach()
    direction = direction / direction.norm()
    ids = torch.tensor([tokenizer(f"From the Kepler notes: {s}").input_ids for s in CORPORA["forget"][:1]])
    at_marker = float((residual_after_block(model, LAYER, ids, torch.ones_like(ids))[0][ids[0] == marker] @ direction).min())
    retain_top = float((retain_acts @ direction).max())
    assert at_marker > retain_top  # the marker stands out from every retain token
    cut = (retain_top + at_marker) / 2 if not leaky else float((retain_acts @ direction).quantile(0.9))
    d, n = model.config.hidden_size, 8
    mean = retain_acts.mean(0)
    w_enc, b_enc = torch.zeros(d, n), torch.full((n,), -1e6)
    w_enc[:, 0], b_enc[0] = mean / mean.norm(), 100.0  # dense: always far above 0
    w_enc[:, 1], b_enc[1] = direction, -cut
    torch.manual_seed(1)
    w_dec = torch.randn(n, d)
    return {"W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec / w_dec.norm(dim=1, keepdim=True), "b_dec": torch.zeros(d),
            "threshold": torch.zeros(n)}


@pytest.fixture(scope="module")
def planted(tiny_model_dir, tiny_model_cfg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unlearning")
    cfg = write_marked_data(folder)
    unlearning_questions(str(tiny_model_dir), tiny_model_cfg, cfg, str(folder / "questions.parquet"))
    unlearning_corpus(str(tiny_model_dir), tiny_model_cfg, LAYER, cfg, str(folder / "corpus.safetensors"))
    model, tokenizer = load_model(tiny_model_dir, "float32", device="cpu")
    acts = read_tensors(folder / "corpus.safetensors")
    results = {}
    for name, leaky in (("marker", False), ("leaky", True)):
        save_file(planted_sae(model, tokenizer, acts["retain"], leaky), str(folder / f"{name}.safetensors"))
        unlearning(str(tiny_model_dir), tiny_model_cfg, LAYER, str(folder / f"{name}.safetensors"), name,
                   str(folder / "questions.parquet"), str(folder / "corpus.safetensors"), cfg, str(folder / f"{name}.json"))
        results[name] = json.loads((folder / f"{name}.json").read_text())
    return read_parquet(folder / "questions.parquet"), results


def test_a_latent_on_the_forget_marker_unlearns_the_forget_questions_and_keeps_retain(planted):
    questions, results = planted
    known = questions[questions["known"]]
    assert (known["topic"] == "forget").sum() >= 8 and (known["topic"] == "retain").sum() >= 8
    out = results["marker"]
    details = pd.DataFrame(out["eval_result_details"])
    assert out["eval_type_id"] == "unlearning"
    # the dense latent fires most on the forget corpus but is never chosen: it fires on the retain corpus too
    assert all(latents == [1] for latents in details["latents"])
    assert (details["retain_accuracy"] == 1.0).all() and details["passes_retain_filter"].all()
    score = out["eval_result_metrics"]["unlearning"]["unlearning_score"]
    assert score == pytest.approx(1 - details["forget_accuracy"].min()) and score > 0.3


def test_the_same_latent_firing_on_the_retain_corpus_is_not_selected(planted):
    _, results = planted
    out = results["leaky"]
    details = pd.DataFrame(out["eval_result_details"])
    assert all(latents == [] for latents in details["latents"])
    assert (details["forget_accuracy"] == 1.0).all()
    assert out["eval_result_metrics"]["unlearning"]["unlearning_score"] == 0.0


def test_letter_questions_are_known_only_when_right_in_all_24_orders(tiny_model_dir, tiny_model_cfg, tmp_path):
    rows = mcq_rows()
    for topic, picked in (("forget", rows.iloc[:2]), ("retain", rows.iloc[[70]])):
        picked[["question", "choices", "answer", "subject"]].to_json(tmp_path / f"{topic}.jsonl", orient="records", lines=True)
    cfg = {"answer_format": "letter", "forget_questions": str(tmp_path / "forget.jsonl"),
           "retain_questions": str(tmp_path / "retain.jsonl")}
    unlearning_questions(str(tiny_model_dir), tiny_model_cfg, cfg, str(tmp_path / "questions.parquet"))
    frame = read_parquet(tmp_path / "questions.parquet")
    assert frame["topic"].tolist() == ["forget", "forget", "retain"]
    assert frame["orders_correct"].between(0, 24).all()
    assert (frame["known"] == (frame["orders_correct"] == 24)).all()
    assert frame["correct"].dtype == bool and (frame["correct"] | ~frame["known"]).all()


def test_a_model_that_knows_no_question_of_a_topic_gets_no_score(tmp_path):
    sae = {"W_enc": torch.eye(4), "b_enc": torch.zeros(4), "W_dec": torch.eye(4), "b_dec": torch.zeros(4),
           "threshold": torch.zeros(4)}
    save_file(sae, str(tmp_path / "sae.safetensors"))
    save_file({"forget": torch.randn(20, 4), "retain": torch.randn(20, 4)}, str(tmp_path / "corpus.safetensors"))
    frame = mcq_rows().assign(correct=False, known=False, answer_format="cloze")
    frame.loc[frame["topic"] == "retain", ["correct", "known"]] = True
    frame.to_parquet(tmp_path / "questions.parquet")
    unlearning("unused", {"name": "m", "dtype": "float32"}, 0, str(tmp_path / "sae.safetensors"), "sae",
               str(tmp_path / "questions.parquet"), str(tmp_path / "corpus.safetensors"), {}, str(tmp_path / "out.json"))
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["eval_result_metrics"] == {"unlearning": {"unlearning_score": None}}
    assert "knows no question" in out["eval_result_unstructured"]["not_evaluated"]


def test_user_files_need_four_choices_and_the_three_columns(tmp_path):
    from interpflow.errors import ConfigError
    from interpflow.saebench.unlearning_data import read_corpus, read_questions

    pd.DataFrame({"question": ["q"], "choices": [["a", "b", "c"]], "answer": [0]}).to_parquet(tmp_path / "three.parquet")
    with pytest.raises(ConfigError, match="four choices"):
        read_questions(str(tmp_path / "three.parquet"), "forget")
    pd.DataFrame({"question": ["q"], "answer": [0]}).to_json(tmp_path / "bad.jsonl", orient="records", lines=True)
    with pytest.raises(ConfigError, match="choices"):
        read_questions(str(tmp_path / "bad.jsonl"), "retain")
    (tmp_path / "corpus.txt").write_text("first document\n\nsecond document\n")
    assert read_corpus(str(tmp_path / "corpus.txt"), "forget") == ["first document", "second document"]
