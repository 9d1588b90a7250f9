"""SAEBench's `unlearning` evaluation of one SAE at one (model, layer): can clamping a few latents
make the model forget one topic while it keeps the others?

Following SAEBench's `evals/unlearning`:

1. Firing rates: each latent's share of the forget corpus's tokens and of the retain corpus's tokens
   on which it is > 0 (the first token of each document left out, as SAEBench masks BOS).
2. Selection, per retain threshold t: the latents whose retain rate is below t and whose forget rate
   is above 0, ranked by forget rate (ties by latent index); a setting clamps the top n of them.
3. Intervention (SAEBench's clamp_feature_activation): after block L, at every token but the first,
   each selected latent that fires is set to -multiplier and the SAE's error is kept, so the residual
   becomes h + (z' - z) W_dec.
4. Accuracy on the questions the unmodified model knows (`unlearning_mcq.py`), so it is 1 before any
   intervention: forget accuracy on the forget questions, retain accuracy pooled over every retain
   question (SAEBench's all_side_effects_mcq over its MMLU subjects).
5. unlearning_score = 1 - the lowest forget accuracy among settings whose retain accuracy is at
   least `retain_accuracy_min` (0.99 of the original, which is 1); 0 when no setting qualifies.

Settings that clamp the same latents with the same multiplier (a short ranking cut at 10 and at 20)
run once.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from interpflow.artifacts import read_parquet, read_tensors
from interpflow.errors import ConfigError
from interpflow.models.architectures import check_layer
from interpflow.models.loading import load_model
from interpflow.sae.format import check_sae, encode
from interpflow.saebench import unlearning_mcq
from interpflow.saebench.output import write_eval_output
from interpflow.saebench.unlearning_mcq import build_prompts, score_prompts

DEFAULTS = {
    **unlearning_mcq.DEFAULTS,
    "retain_thresholds": [0.001, 0.01],    # SAEBench's
    "n_features_list": [10, 20],           # SAEBench's
    "multipliers": [25, 50, 100, 200],     # SAEBench's
    "retain_accuracy_min": 0.99,           # SAEBench's filter on all_side_effects_mcq
}


def firing_rates(sae: dict, acts: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """Share of the rows of `acts` on which each latent is > 0."""
    if len(acts) == 0:
        return np.zeros(sae["W_enc"].shape[1])
    counts = sum((encode(sae, x) > 0).sum(0) for x in acts.float().split(batch))
    return (counts.double() / len(acts)).numpy()


def top_latents(forget_rate: np.ndarray, retain_rate: np.ndarray, retain_threshold: float) -> list[int]:
    """Latents with retain rate < threshold and forget rate > 0, highest forget rate first."""
    eligible = np.flatnonzero((retain_rate < retain_threshold) & (forget_rate > 0))
    order = np.lexsort((eligible, -forget_rate[eligible]))
    return eligible[order].tolist()


def settings(forget_rate: np.ndarray, retain_rate: np.ndarray, cfg: dict) -> list[dict]:
    """Every (retain threshold, n features, multiplier) of the sweep with the latents it clamps."""
    out = []
    for threshold in cfg["retain_thresholds"]:
        ranked = top_latents(forget_rate, retain_rate, threshold)
        for n in cfg["n_features_list"]:
            for multiplier in cfg["multipliers"]:
                out.append({"retain_threshold": threshold, "n_features": n, "multiplier": multiplier,
                            "latents": ranked[:n]})
    return out


def unlearning_score(table: pd.DataFrame, retain_accuracy_min: float) -> float:
    """1 - the lowest forget accuracy among settings that keep retain accuracy >= the minimum; 0 if none do."""
    kept = table[table["retain_accuracy"] >= retain_accuracy_min]
    return float(1.0 - kept["forget_accuracy"].min()) if len(kept) else 0.0


def clamp(sae: dict, latents: list[int], multiplier: float):
    """The edit for `score_prompts`: selected latents that fire become -multiplier, the SAE's error kept."""
    w_dec = sae["W_dec"][latents].float()

    def for_batch(clampable: torch.Tensor):
        def edit(hidden: torch.Tensor) -> torch.Tensor:
            z = encode(sae, hidden)[..., latents]
            fires = (z > 0) & clampable[..., None]
            change = torch.where(fires, -float(multiplier) - z, torch.zeros_like(z))
            return hidden + (change @ w_dec).to(hidden.dtype)
        return edit

    return for_batch


def sweep(model, tokenizer, known: pd.DataFrame, sae: dict, layer: int, forget_rate: np.ndarray, retain_rate: np.ndarray,
          model_cfg: dict, cfg: dict) -> pd.DataFrame:
    """One row per setting: its latents, forget and retain accuracy, and accuracy per subject."""
    prompts, items = build_prompts(tokenizer, model_cfg, known, cfg, all_orders=False)
    right = items["right"].to_numpy()
    done: dict[tuple, np.ndarray] = {}
    rows = []
    for setting in settings(forget_rate, retain_rate, cfg):
        key = (tuple(setting["latents"]), setting["multiplier"])
        if key not in done:
            if setting["latents"]:
                scores = score_prompts(model, tokenizer, prompts, cfg["batch_size"], layer,
                                       clamp(sae, setting["latents"], setting["multiplier"]), "clamped answers")
                done[key] = scores.argmax(1) == right
            else:  # nothing to clamp: the known questions stay right
                done[key] = np.ones(len(prompts), dtype=bool)
        correct = done[key]
        answered = known.iloc[items["question"].to_numpy()].assign(correct_now=correct)
        forget = answered["topic"] == "forget"
        rows.append({**{k: v for k, v in setting.items() if k != "latents"}, "n_latents_clamped": len(setting["latents"]),
                     "latents": setting["latents"],
                     "forget_accuracy": float(answered.loc[forget, "correct_now"].mean()),
                     "retain_accuracy": float(answered.loc[~forget, "correct_now"].mean()),
                     **{f"accuracy_{s}": float(g["correct_now"].mean()) for s, g in answered.groupby("subject")}})
    return pd.DataFrame(rows)


def unlearning(model_dir: str, model_cfg: dict, layer: int, sae: str, sae_name: str, questions: str, corpus: str,
               eval_cfg: dict, out: str) -> None:
    """SAEBench's unlearning score of the SAE at `sae`, written as SAEBench's JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    start = time.perf_counter()
    tensors = {k: v.float() for k, v in read_tensors(sae).items()}
    check_sae(tensors)
    acts = read_tensors(corpus)
    forget_rate, retain_rate = firing_rates(tensors, acts["forget"]), firing_rates(tensors, acts["retain"])
    frame = read_parquet(questions)
    if (frame["answer_format"] != cfg["answer_format"]).any():
        raise ConfigError(f"unlearning: {questions} was answered in another answer_format than {cfg['answer_format']!r}")
    known = frame[frame["known"]].reset_index(drop=True)
    n_known = {t: int((known["topic"] == t).sum()) for t in ("forget", "retain")}
    eval_config = {**cfg, "model_name": model_cfg["name"], "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "intervention_method": "clamp_feature_activation", "target_metric": "correct",
                   "dataset_names": sorted(frame["subject"].unique().tolist()),
                   "corpus_tokens": {"forget": len(acts["forget"]), "retain": len(acts["retain"])}}
    baseline = {s: {"accuracy": round(float(g["correct"].mean()), 6), "known": int(g["known"].sum()), "questions": len(g)}
                for s, g in frame.groupby("subject")}
    unstructured = {"baseline": baseline, "known_questions": n_known,
                    "eligible_latents": {str(t): len(top_latents(forget_rate, retain_rate, t)) for t in cfg["retain_thresholds"]}}
    if min(n_known.values()) == 0:
        unstructured["not_evaluated"] = f"the model knows no question of a topic ({n_known}): nothing to unlearn or retain"
        write_eval_output(out, "unlearning", eval_config, {"unlearning": {"unlearning_score": None}}, [], sae, sae_name,
                          unstructured)
        print(f"unlearning {sae_name}: not evaluated: {unstructured['not_evaluated']}")
        return
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    check_layer(model, layer)
    on_device = {k: v.to(model.device) for k, v in tensors.items()}
    table = sweep(model, tokenizer, known, on_device, layer, forget_rate, retain_rate, model_cfg, cfg)
    table["passes_retain_filter"] = table["retain_accuracy"] >= cfg["retain_accuracy_min"]
    score = unlearning_score(table, cfg["retain_accuracy_min"])
    details = table.round(6).to_dict("records")
    write_eval_output(out, "unlearning", eval_config, {"unlearning": {"unlearning_score": round(score, 6)}}, details,
                      sae, sae_name, unstructured)
    print(f"unlearning {sae_name}: score {score:.3f} ({n_known['forget']} forget / {n_known['retain']} retain questions known, "
          f"{int(table['passes_retain_filter'].sum())}/{len(table)} settings keep retain accuracy) "
          f"in {time.perf_counter() - start:.0f} s\n{table.drop(columns=['latents']).round(3).to_string()}")
