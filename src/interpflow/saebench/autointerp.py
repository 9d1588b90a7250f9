"""SAEBench's `autointerp` evaluation of one SAE at one (model, layer): an LLM explains a latent from
its activating examples, then, given only the explanation, picks out the examples it fires on.

Examples are windows of the run's latent-evaluation texts (the scored tokens whose activations
are cached), `2 * window_radius + 1` tokens around the token where the latent fires most. For each
of `n_latents` latents drawn from those firing on at least `min_firing_examples` examples:

- explanation: the top `n_top_ex_for_generation` examples by maximum activation plus
  `n_iw_sampled_ex_for_generation` drawn with probability proportional to it (importance
  weighted), strongest first, the firing tokens marked <<like this>>;
- scoring: a shuffle of `n_top_ex_for_scoring` further top examples, `n_iw_sampled_ex_for_scoring`
  further weighted ones and `n_random_ex_for_scoring` examples where the latent does not fire at
  all; the LLM answers with the numbers of the examples it thinks fire. A latent's score is the
  share of scoring examples it classed right; `autointerp_score` is their mean.

As SAEBench, with two differences docs/benchmarks/sae.md names: the texts are the run's data rather than
2M tokens of the Pile, and the random scoring examples are drawn among examples where the latent
stays at zero (SAEBench draws them from all texts, where a sparse latent almost never fires).
Every request goes through the project's chat client: cached, concurrent, costed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interpflow.artifacts import open_tensors, read_parquet, read_tensors
from interpflow.providers.cache import CallCache
from interpflow.providers.openai_chat import ChatClient
from interpflow.sae.format import check_sae, encode
from interpflow.saebench.output import write_eval_output
from interpflow.errors import ConfigError

DEFAULTS = {
    "n_latents": 20,                       # SAEBench: 1,000
    "min_firing_examples": 4,              # SAEBench's dead-latent threshold: 15 firings
    "window_radius": 10,                   # tokens each side of the peak (SAEBench's buffer: 10)
    "n_top_ex_for_generation": 10,         # SAEBench's
    "n_iw_sampled_ex_for_generation": 5,   # SAEBench's
    "n_top_ex_for_scoring": 2,             # SAEBench's
    "n_iw_sampled_ex_for_scoring": 2,      # SAEBench's
    "n_random_ex_for_scoring": 10,         # SAEBench's
    "highlight_fraction": 0.01,            # a token is marked when it reaches this share of the example's peak
    "explanation_max_tokens": 60,
    "scoring_max_tokens": 40,
    "seed": 0,
}
EXPLAIN = (
    "You are helping to interpret one feature of a language model. It is active on particular tokens "
    "of a text. Below are texts where it is active, strongest first; the tokens where it is active are "
    "wrapped in << and >>. In one short phrase of at most 15 words, say what the feature responds to: "
    "a word, a part of a word, a kind of token or a topic. Answer with the phrase only."
)
SCORE = (
    "A feature of a language model is described as: \"{explanation}\".\n"
    "Below are {n} numbered texts. On which of them is this feature active? Answer with the numbers "
    "of those texts separated by commas (for example: 2, 5), or None if it is active on none. "
    "Answer with the numbers only.\n\n{texts}"
)


def scored_token_texts(model_dir: str, model_cfg: dict, data_files: list[str], max_length: int) -> list[list[str]]:
    """The text of every scored token of every example, in the cache's order (its rows' tokens)."""
    from transformers import AutoTokenizer

    from interpflow.stages.activations import scored_examples

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    frame = pd.concat([read_parquet(p) for p in data_files], ignore_index=True)
    examples = scored_examples(tokenizer, model_cfg, frame["input"].tolist(), frame["output"].tolist(), max_length)
    return [[tokenizer.decode([t]) for t in e.input_ids[e.score_start :]] for e in examples]


def latent_activations(acts_files: list[str], sae: dict) -> torch.Tensor:
    """Every cached token's SAE latents [n_tokens, n_latents], in the cache's order (float16 to halve memory)."""
    blocks = []
    for acts_path in acts_files:
        with open_tensors(acts_path) as f:
            acts = f.get_tensor("acts")
        for start in range(0, len(acts), 8192):
            blocks.append(encode(sae, acts[start : start + 8192].float()).to(torch.float16))
    return torch.cat(blocks)


def window(tokens: list[str], acts: np.ndarray, centre: int, radius: int, highlight_at: float | None) -> str:
    """The tokens within `radius` of `centre`, those reaching `highlight_at` wrapped in << >>."""
    lo, hi = max(0, centre - radius), min(len(tokens), centre + radius + 1)
    parts = [f"<<{tokens[i]}>>" if highlight_at is not None and acts[i] >= highlight_at and acts[i] > 0 else tokens[i]
             for i in range(lo, hi)]
    return "".join(parts).replace("\n", " ").strip()


def choose_examples(peaks: np.ndarray, cfg: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Example numbers for explanation and scoring from each example's peak activation of one latent."""
    firing = np.flatnonzero(peaks > 0)
    by_peak = firing[np.argsort(-peaks[firing], kind="stable")]
    n_gen, n_score = cfg["n_top_ex_for_generation"], cfg["n_top_ex_for_scoring"]
    top = by_peak[: n_gen + n_score]
    top_score = rng.choice(top, min(n_score, len(top)), replace=False)
    top_gen = np.array([e for e in top if e not in set(top_score)], dtype=int)
    rest = by_peak[len(top):]
    n_iw = min(len(rest), cfg["n_iw_sampled_ex_for_generation"] + cfg["n_iw_sampled_ex_for_scoring"])
    weighted = rng.choice(rest, n_iw, replace=False, p=peaks[rest] / peaks[rest].sum()) if n_iw else np.array([], dtype=int)
    silent = np.flatnonzero(peaks <= 0)
    random = rng.choice(silent, min(len(silent), cfg["n_random_ex_for_scoring"]), replace=False)
    n_iw_gen = min(len(weighted), cfg["n_iw_sampled_ex_for_generation"])
    generation = np.concatenate([top_gen, weighted[:n_iw_gen]])
    return {"generation": generation[np.argsort(-peaks[generation], kind="stable")],
            "firing": np.concatenate([top_score, weighted[n_iw_gen:]]).astype(int), "silent": random.astype(int)}


def parse_numbers(answer: str, n: int) -> set[int] | None:
    """The example numbers (1..n) of a scoring answer; an empty set for None; None when unreadable."""
    text = answer.strip()
    if re.match(r"^\W*none\b", text, flags=re.I):
        return set()
    numbers = [int(x) for x in re.findall(r"\d+", text)]
    if not numbers or any(x < 1 or x > n for x in numbers):
        return None
    return set(numbers)


def clean_explanation(answer: str) -> str:
    first = next((line for line in answer.strip().splitlines() if line.strip()), "")
    return re.sub(r"^(explanation|answer)\s*:\s*", "", first.strip(), flags=re.I).strip().strip('"')


def chat_client(llm_cfg: dict, cache_dir: str) -> ChatClient:
    return ChatClient(model=llm_cfg["model"], base_url=llm_cfg.get("base_url"), api_key_env=llm_cfg["api_key_env"],
                      concurrency=int(llm_cfg["concurrency"]), timeout_s=float(llm_cfg["timeout_s"]),
                      max_retries=int(llm_cfg["max_retries"]), backoff_s=float(llm_cfg["backoff_s"]),
                      cache=CallCache(Path(cache_dir) / "autointerp_calls.sqlite"), price_per_1m=llm_cfg.get("price_per_1m"),
                      config_section="saebench.autointerp.llm")


def autointerp_latents(latents: torch.Tensor, tokens: list[list[str]], client: ChatClient,
                       cfg: dict) -> pd.DataFrame:
    """One row per explained latent: its explanation, the scorer's answer and the latent's score.
    latents: [n_tokens, n_latents], the examples' tokens in order (tokens[e] are example e's)."""
    rng = np.random.default_rng(cfg["seed"])
    n_examples = len(tokens)
    starts = np.r_[0, np.cumsum([len(t) for t in tokens])]
    lengths = np.diff(starts)
    peaks = np.zeros((n_examples, latents.shape[1]), dtype=np.float32)  # each example's peak activation per latent
    peaks[lengths > 0] = np.maximum.reduceat(latents.float().numpy(), starts[:-1][lengths > 0], axis=0)
    peaks = np.maximum(peaks, 0)
    eligible = np.flatnonzero((peaks > 0).sum(0) >= cfg["min_firing_examples"])
    if not len(eligible):
        raise ConfigError(f"autointerp: no latent fires on {cfg['min_firing_examples']} examples or more of the "
                         f"{n_examples} cached ones; lower saebench.autointerp.min_firing_examples or cache more data")
    chosen = np.sort(rng.choice(eligible, min(len(eligible), cfg["n_latents"]), replace=False))

    def text_of(latent: int, example: int, highlight: bool) -> str:
        acts = latents[starts[example] : starts[example + 1], latent].float().numpy()
        centre = int(acts.argmax()) if acts.max() > 0 else int(rng.integers(len(acts)))
        return window(tokens[example], acts, centre, cfg["window_radius"],
                      cfg["highlight_fraction"] * acts.max() if highlight else None)

    plans = []
    for latent in chosen:
        picked = choose_examples(peaks[:, latent], cfg, rng)
        shown = [text_of(latent, e, True) for e in picked["generation"]]
        scoring = [(text_of(latent, e, False), True) for e in picked["firing"]] + \
                  [(text_of(latent, e, False), False) for e in picked["silent"]]
        order = rng.permutation(len(scoring))
        plans.append({"latent": int(latent), "shown": shown, "scoring": [scoring[i] for i in order]})

    explain = [[{"role": "system", "content": EXPLAIN},
                {"role": "user", "content": "\n".join(f"Text {i + 1}: {t}" for i, t in enumerate(p["shown"]))}] for p in plans]
    explanations = [clean_explanation(c.text) for c in client.complete_many(explain, 0.0, cfg["explanation_max_tokens"])]
    score = [[{"role": "user", "content": SCORE.format(explanation=x, n=len(p["scoring"]),
                                                       texts="\n".join(f"{i + 1}. {t}" for i, (t, _) in enumerate(p["scoring"])))}]
             for p, x in zip(plans, explanations)]
    answers = [c.text for c in client.complete_many(score, 0.0, cfg["scoring_max_tokens"])]
    rows = []
    for plan, explanation, answer in zip(plans, explanations, answers):
        truth = [is_firing for _, is_firing in plan["scoring"]]
        picked = parse_numbers(answer, len(truth))
        correct = None if picked is None else float(np.mean([(i + 1 in picked) == t for i, t in enumerate(truth)]))
        rows.append({"latent": plan["latent"], "explanation": explanation, "answer": answer.strip(),
                     "n_scoring_examples": len(truth), "n_firing_examples": int(sum(truth)), "score": correct})
    return pd.DataFrame(rows)


def autointerp(model_dir: str, model_cfg: dict, sae: str, sae_name: str, acts: list[str], data: list[str],
               eval_cfg: dict, cache_dir: str, layer: int, out: str) -> None:
    """SAEBench's autointerp score of the SAE at `sae`, written as SAEBench's JSON to `out`."""
    cfg = {**DEFAULTS, **{k: v for k, v in (eval_cfg or {}).items() if k != "llm"}}
    tensors = read_tensors(sae)
    check_sae(tensors)
    client = chat_client(eval_cfg["llm"], cache_dir)
    latents = latent_activations(acts, tensors)
    tokens = scored_token_texts(model_dir, model_cfg, data, int(cfg.get("max_length", 128)))
    if sum(len(t) for t in tokens) != len(latents):
        raise ConfigError(f"autointerp: the data's scored tokens ({sum(len(t) for t in tokens)}) do not match the cached "
                         f"activations ({len(latents)}); re-run cache_activations with the same tokenizer and max_length")
    table = autointerp_latents(latents, tokens, client, cfg)
    scores = table["score"].dropna()
    metrics = {"autointerp": {"autointerp_score": round(float(scores.mean()), 6) if len(scores) else None,
                              "autointerp_std_dev": round(float(scores.std(ddof=0)), 6) if len(scores) else None}}
    details = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in table.to_dict("records")]
    eval_config = {**cfg, "model_name": model_cfg["name"], "layer": layer, "llm": {k: v for k, v in eval_cfg["llm"].items()
                                                                                     if k != "price_per_1m"},
                   "dataset": "windows of the run's latent-evaluation texts"}
    write_eval_output(out, "autointerp", eval_config, metrics, details, sae, sae_name,
                      unstructured={"unreadable_answers": int(table["score"].isna().sum()), "usage": client.usage()})
    print(f"autointerp {sae_name}: {len(table)} latents, score {metrics['autointerp']['autointerp_score']}, "
          f"unreadable answers {int(table['score'].isna().sum())}")
