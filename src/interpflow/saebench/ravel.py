"""SAEBench's `ravel` evaluation: does an SAE separate one attribute of an entity from the others?

Data (`ravel_data.py`): prompts that ask for one attribute (Country, Continent, Language) of a city.
`ravel_prompts` runs the model on each once, greedy, and keeps what it knows: a prompt counts when
its completion starts with the attribute's value (SAEBench's check). Per SAE, for each attribute A:

- cause pairs: a base prompt and a source prompt, both asking for A, about cities whose A differs;
  the target is the source's answer (its first generated token);
- isolation pairs: base and source both ask for another attribute B (cities whose B differs), as
  many as the cause pairs; the target is the base's own answer.

A binary mask over the SAE's latents is learned (SAEBench's MDBM): at the base's final city token,
after block L, the residual is replaced by decode((1 - m) * encode(base) + m * encode(source)), with
m = sigmoid(mask / temperature) in training (temperature from 1 down to 1e-4, log-spaced over the
steps) and m = [mask > 0] in evaluation, trained with cross-entropy on the targets (Adam). On the
held-out pairs the model generates greedily with the hard mask; a pair is right when the completion
starts with the target's value. A pair whose base and target first tokens are equal counts as an
isolation pair, as in SAEBench. Per attribute: cause score, isolation score, disentanglement =
their mean; the metrics average the attributes.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

from interpflow.artifacts import read_parquet, read_tensors, write_parquet
from interpflow.models.architectures import check_layer
from interpflow.models.generation import _left_pad, decode, generate
from interpflow.models.hooks import edit_residual, residual_after_block
from interpflow.models.loading import load_model
from interpflow.sae.format import check_sae, decode as sae_decode, encode
from interpflow.saebench.output import write_eval_output
from interpflow.saebench.ravel_data import ATTRIBUTES, ravel_rows

DEFAULTS = {
    "n_generated_tokens": 6,        # SAEBench's
    "pairs_per_attribute": 48,      # cause pairs per attribute, as many isolation pairs (SAEBench: 5,000)
    "train_fraction": 0.7,          # SAEBench's train_test_split
    "epochs": 3,                    # SAEBench: 2 epochs over ~7,000 pairs; more passes over our few
    "learning_rate": 1e-3,          # SAEBench's
    "batch_size": 16,
    "seed": 42,                     # SAEBench's random_seed
}


def completion_matches(label: str, completion: str) -> bool:
    """SAEBench's check: the completion (up to a quote) starts with the label, or is a prefix of it."""
    label, out = label.lower(), completion.split('"')[0].strip(' "').lower()
    if not label or not out:
        return False
    return out.startswith(label) if len(label) < len(out) else label.startswith(out)


def ravel_prompts(model_dir: str, model_cfg: dict, eval_cfg: dict, out: str) -> None:
    """Run every RAVEL prompt through the model once; keep its completion and whether it knows the answer."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    frame = pd.DataFrame(ravel_rows())
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids = [bos + tokenizer(t, add_special_tokens=False).input_ids for t in frame["text"]]
    prefix = [bos + tokenizer(t, add_special_tokens=False).input_ids for t in frame["entity_text"]]
    frame["input_ids"] = ids
    # the city's final token; -1 where the city does not tokenize the same inside the prompt
    frame["entity_pos"] = [len(p) - 1 if full[: len(p)] == p else -1 for p, full in zip(prefix, ids)]
    generated = generate(model, tokenizer, ids, None, cfg["n_generated_tokens"], cfg["batch_size"])
    frame["completion"] = decode(tokenizer, generated)
    frame["first_token"] = [g[0] if g else -1 for g in generated]
    frame["known"] = [completion_matches(lab, c) and pos >= 0 and g != []
                      for lab, c, pos, g in zip(frame["label"], frame["completion"], frame["entity_pos"], generated)]
    write_parquet(frame, out)
    known = frame[frame["known"]]
    print(f"ravel: the model knows {len(known)} of {len(frame)} prompts; by attribute "
          + ", ".join(f"{a} {int((known['attribute'] == a).sum())}" for a in ATTRIBUTES))


def prompt_pairs(known: pd.DataFrame, attribute: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Up to n (base, source) pairs of prompts that both ask for `attribute` about cities whose values differ."""
    rows = known[known["attribute"] == attribute]
    pairs = []
    for base in rng.permutation(len(rows))[:n]:
        others = np.flatnonzero(rows["label"].to_numpy() != rows["label"].iloc[base])
        if len(others):
            pairs.append((rows.index[base], rows.index[rng.choice(others)]))
    return pd.DataFrame(pairs, columns=["base", "source"])


def attribute_pairs(known: pd.DataFrame, attribute: str, cfg: dict, rng: np.random.Generator) -> pd.DataFrame:
    """Cause and isolation pairs of one attribute, shuffled, with target token, target value and split."""
    cause = prompt_pairs(known, attribute, cfg["pairs_per_attribute"], rng).assign(kind="cause")
    cause["target"] = known.loc[cause["source"], "first_token"].to_numpy()
    cause["target_value"] = known.loc[cause["source"], "label"].to_numpy()
    others = [a for a in ATTRIBUTES if a != attribute]
    iso = pd.concat([prompt_pairs(known, b, cfg["pairs_per_attribute"], rng) for b in others], ignore_index=True)
    iso = iso.iloc[rng.permutation(len(iso))[: len(cause)]].assign(kind="isolation")
    iso["target"] = known.loc[iso["base"], "first_token"].to_numpy()
    iso["target_value"] = known.loc[iso["base"], "label"].to_numpy()
    pairs = pd.concat([cause, iso], ignore_index=True)
    pairs = pairs.iloc[rng.permutation(len(pairs))].reset_index(drop=True)
    pairs["split"] = np.where(np.arange(len(pairs)) < int(len(pairs) * cfg["train_fraction"]), "train", "test")
    return pairs


def positions(attention: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch, as generation gives them: each prompt starts at 0."""
    return (attention.cumsum(-1) - 1).clamp_min(0)


class LatentSwap:
    """Replaces the residual at each base prompt's city token by the SAE's mix of base and source latents."""

    def __init__(self, model, tokenizer, sae: dict, layer: int, known: pd.DataFrame):
        self.model, self.tokenizer, self.sae, self.layer, self.known = model, tokenizer, sae, layer, known
        self.mask = torch.zeros(sae["W_enc"].shape[1], requires_grad=True)

    def source_latents(self, sources: list[int]) -> torch.Tensor:
        rows = self.known.loc[sources]
        ids, attention = _left_pad(list(rows["input_ids"]), self.tokenizer.pad_token_id)
        hidden = residual_after_block(self.model, self.layer, ids, attention, positions(attention))
        at = ids.shape[1] - torch.tensor([len(i) for i in rows["input_ids"]]) + torch.tensor(rows["entity_pos"].to_numpy())
        return encode(self.sae, hidden[torch.arange(len(rows)), at].float())

    def edit(self, bases: list[int], source_latents: torch.Tensor, temperature: float | None):
        """The edit for `edit_residual` on a left-padded batch of the base prompts; prefill only."""
        rows = self.known.loc[bases]
        lengths = torch.tensor([len(i) for i in rows["input_ids"]])
        entity = torch.tensor(rows["entity_pos"].to_numpy())
        weights = (self.mask > 0).float() if temperature is None else torch.sigmoid(self.mask / temperature)

        def apply(hidden: torch.Tensor) -> torch.Tensor:
            if hidden.shape[1] == 1:  # a cached decoding step: the city token was edited at prefill
                return hidden
            at = hidden.shape[1] - lengths + entity
            batch = torch.arange(len(bases))
            mixed = (1 - weights) * encode(self.sae, hidden[batch, at].float()) + weights * source_latents
            edited = hidden.clone()
            edited[batch, at] = sae_decode(self.sae, mixed).to(hidden.dtype)
            return edited

        return apply

    def logits(self, pairs: pd.DataFrame, temperature: float | None) -> torch.Tensor:
        bases, sources = list(pairs["base"]), list(pairs["source"])
        with torch.no_grad():
            source = self.source_latents(sources)
        ids, attention = _left_pad(list(self.known.loc[bases, "input_ids"]), self.tokenizer.pad_token_id)
        with edit_residual(self.model, self.layer, self.edit(bases, source, temperature)):
            return self.model(input_ids=ids, attention_mask=attention, position_ids=positions(attention),
                              use_cache=False).logits[:, -1].float()

    def train(self, pairs: pd.DataFrame, cfg: dict) -> list[float]:
        optimizer = torch.optim.Adam([self.mask], lr=cfg["learning_rate"])
        batches = math.ceil(len(pairs) / cfg["batch_size"])
        temperatures = torch.logspace(0, -4, max(cfg["epochs"] * batches, 1)).tolist()
        losses, step = [], 0
        for epoch in range(cfg["epochs"]):
            order = pairs.sample(frac=1.0, random_state=cfg["seed"] + epoch)
            for start in range(0, len(order), cfg["batch_size"]):
                batch = order.iloc[start : start + cfg["batch_size"]]
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(self.logits(batch, temperatures[step]),
                                                         torch.tensor(batch["target"].to_numpy()))
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                step += 1
        return losses

    @torch.no_grad()
    def completions(self, pairs: pd.DataFrame, n_tokens: int, batch_size: int) -> list[str]:
        bases, sources = list(pairs["base"]), list(pairs["source"])
        source = self.source_latents(sources)

        def intervene(rows: list[int]):
            return edit_residual(self.model, self.layer, self.edit([bases[r] for r in rows], source[rows], None))

        prompts = list(self.known.loc[bases, "input_ids"])
        return decode(self.tokenizer, generate(self.model, self.tokenizer, prompts, intervene, n_tokens, batch_size))


def attribute_scores(swap: LatentSwap, pairs: pd.DataFrame, cfg: dict) -> dict:
    losses = swap.train(pairs[pairs["split"] == "train"], cfg)
    test = pairs[pairs["split"] == "test"].reset_index(drop=True)
    right = np.array([completion_matches(v, c) for v, c in
                      zip(test["target_value"], swap.completions(test, cfg["n_generated_tokens"], cfg["batch_size"]))])
    isolation = swap.known.loc[test["base"], "first_token"].to_numpy() == test["target"].to_numpy()
    cause = float(right[~isolation].mean()) if (~isolation).any() else float("nan")
    iso = float(right[isolation].mean()) if isolation.any() else float("nan")
    return {"cause_score": cause, "isolation_score": iso, "disentangle_score": (cause + iso) / 2,
            "n_train_pairs": int((pairs["split"] == "train").sum()), "n_test_pairs": len(test),
            "mask_latents": int((swap.mask > 0).sum()), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None}


def ravel(model_dir: str, model_cfg: dict, layer: int, sae: str, sae_name: str, prompts: str, eval_cfg: dict, out: str) -> None:
    """SAEBench's RAVEL cause, isolation and disentanglement scores of the SAE at `sae`, as SAEBench's JSON."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    tensors = {k: v.float() for k, v in read_tensors(sae).items()}
    check_sae(tensors)
    frame = read_parquet(prompts)
    known = frame[frame["known"]]
    model, tokenizer = load_model(model_dir, model_cfg["dtype"], device="cpu")
    check_layer(model, layer)
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    per_attribute, start = {}, time.perf_counter()
    for attribute in ATTRIBUTES:
        pairs = attribute_pairs(known, attribute, cfg, rng)
        kinds = set(pairs["kind"])
        if len(pairs) < 4 or kinds != {"cause", "isolation"}:
            per_attribute[attribute] = {"not_evaluated": f"the model knows too few prompts ({len(pairs)} pairs)"}
            continue
        per_attribute[attribute] = attribute_scores(LatentSwap(model, tokenizer, tensors, layer, known), pairs, cfg)
    scored = [s for s in per_attribute.values() if "cause_score" in s]

    def mean(key: str) -> float | None:
        values = [s[key] for s in scored if s[key] == s[key]]
        return round(float(np.mean(values)), 6) if values else None

    metrics = {"ravel": {"disentanglement_score": mean("disentangle_score"), "cause_score": mean("cause_score"),
                         "isolation_score": mean("isolation_score")}}
    eval_config = {**cfg, "model_name": model_cfg["name"], "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "entity_attribute_selection": {"city": list(ATTRIBUTES)}, "known_prompts": int(len(known)),
                   "dataset": "ravel_data: well-known cities, written for this project"}
    write_eval_output(out, "ravel", eval_config, metrics, [], sae, sae_name, {"city_results": per_attribute})
    print(f"ravel {sae_name}: {metrics['ravel']} in {time.perf_counter() - start:.0f} s; "
          + "; ".join(f"{a}: {s}" for a, s in per_attribute.items()))
