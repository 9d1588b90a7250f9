"""SAEBench's `absorption` evaluation (first letter) of one SAE at one (model, layer).

Inputs: the first-letter prompts' word-token activations (`first_letter.py`). Following SAEBench
(Chanin et al., "A is for Absorption"):

1. Ground-truth probe: 26 one-vs-rest logistic probes on the LLM activations of the train words
   (BCE with positive weights, Adam, learning rate decayed exponentially), scored on the test words.
   A letter whose probe F1 on the test words is at most `min_gt_probe_f1` has no reliable
   first-letter feature in the model and is left out (SAEBench's newer code); with fewer than
   `min_letters_for_eval` letters left the evaluation reports no score, and says why.
2. k-sparse probing: an L1-penalised multi-probe on the SAE latents of the train words; for each k
   up to `max_k_value` and each letter, the k latents with the largest weights get a logistic
   regression (balanced classes) whose test F1 is recorded. The letter's main latents are the top k
   while each step raises F1 by more than `f1_jump_threshold`; their number is the feature split.
3. Absorption, on each test word of a letter that the ground-truth probe gets right: with the probe
   direction p (unit), a latent's projection is its activation times cos(p, its decoder row).
   - absorption fraction: 0 if the main latents carry the word's whole projection x.p, or if the
     (at most 3) other latents with cos >= 0.1 and positive projection carry less than 40% of it;
     1 if the main latents carry nothing; otherwise absorbed / (absorbed + main);
   - full absorption: no main latent fires, the top-projecting latent has cos >= 0.025 and carries
     at least 40% of x.p, and x.p > 0.
   Per letter, both are averaged over its probe true positives; the metrics average the letters.

Where this differs from SAEBench (docs/benchmarks/sae.md): absorption is measured on the same
test prompts the k-sparse probes are scored on (SAEBench builds fresh prompts with examples from
the whole vocabulary), and the word list is a sample of the vocabulary.
"""

from __future__ import annotations

import math
import statistics
from string import ascii_lowercase as LETTERS  # first_letter.py labels each word by its index here

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from interpflow.artifacts import read_parquet, read_tensors
from interpflow.sae.format import check_sae, encode
from interpflow.saebench.output import write_eval_output

DEFAULTS = {
    "max_k_value": 10,                     # SAEBench's
    "f1_jump_threshold": 0.03,             # SAEBench's
    "min_gt_probe_f1": 0.6,                # SAEBench's min_GT_probe_f1
    "min_letters_for_eval": 20,            # SAEBench's min_feats_for_eval
    "probe_epochs": 100,                   # SAEBench's ground-truth probe
    "k_sparse_probe_epochs": 50,           # SAEBench's
    "k_sparse_probe_l1_decay": 0.01,       # SAEBench's
    "probe_batch_size": 256,               # SAEBench: 4,096 over its whole vocabulary; ours is smaller
    "full_absorption_probe_cos_threshold": 0.025,     # SAEBench's
    "absorption_fraction_probe_cos_threshold": 0.1,   # SAEBench's
    "probe_projection_proportion_threshold": 0.4,     # SAEBench's
    "absorption_fraction_max_absorbing_latents": 3,   # SAEBench's
    "seed": 42,
}
EPS = 1e-8


def train_multi_probe(x: torch.Tensor, letters: np.ndarray, epochs: int, batch_size: int, seed: int,
                      l1: float = 0.0, lr: float = 0.01, end_lr: float = 1e-5, l2: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """26 one-vs-rest logistic probes trained together: (weights [26, d], biases [26])."""
    torch.manual_seed(seed)
    y = torch.nn.functional.one_hot(torch.as_tensor(letters), len(LETTERS)).float()
    positives = y.sum(0)
    pos_weight = (len(y) - positives) / positives.clamp_min(1)
    probe = torch.nn.Linear(x.shape[1], len(LETTERS))
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=l2)
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=math.exp(math.log(end_lr / lr) / max(epochs, 1)))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    for _ in range(epochs):
        for rows in torch.randperm(len(x)).split(batch_size):
            optimizer.zero_grad()
            loss = loss_fn(probe(x[rows]), y[rows]) + l1 * probe.weight.abs().sum(-1).mean()
            loss.backward()
            optimizer.step()
        decay.step()
    return probe.weight.detach().clone(), probe.bias.detach().clone()


def k_sparse_f1(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
                weights: torch.Tensor, max_k: int) -> dict[int, dict[int, tuple[list[int], float]]]:
    """{letter: {k: (latent ids, test F1)}}: a balanced logistic regression on each letter's top-k latents."""
    out: dict[int, dict[int, tuple[list[int], float]]] = {}
    for letter in range(len(LETTERS)):
        if not (y_train == letter).any() or (y_train == letter).all():
            continue
        out[letter] = {}
        for k in range(1, max_k + 1):
            ids = weights[letter].topk(k).indices.tolist()
            model = LogisticRegression(max_iter=500, class_weight="balanced").fit(z_train[:, ids], y_train == letter)
            predicted = model.decision_function(z_test[:, ids]) > 0
            out[letter][k] = (ids, float(f1_score(y_test == letter, predicted, zero_division=0.0)))
    return out


def split_features(by_k: dict[int, tuple[list[int], float]], threshold: float) -> list[int]:
    """The top k latents while each k raised F1 by more than `threshold` over the last kept k."""
    best, chosen = -100.0, []
    for k in sorted(by_k):
        ids, f1 = by_k[k]
        if f1 <= best + threshold:
            break
        best, chosen = f1, ids
    return chosen


def word_absorption(latents: torch.Tensor, cos: torch.Tensor, probe_projection: float, main: list[int],
                    cfg: dict) -> tuple[float, bool]:
    """(absorption fraction, full absorption) of one word, by SAEBench's definitions."""
    projections = latents * cos
    main_projection = float(projections[main].sum())
    candidates = torch.ones(len(latents), dtype=torch.bool)
    candidates[main] = False
    candidates &= (cos >= cfg["absorption_fraction_probe_cos_threshold"]) & (projections > 0)
    absorbing = projections[candidates]
    absorbing_total = float(absorbing.topk(min(cfg["absorption_fraction_max_absorbing_latents"], len(absorbing))).values.sum())
    threshold = cfg["probe_projection_proportion_threshold"]
    if main_projection >= probe_projection or probe_projection <= 0 or absorbing_total / probe_projection < threshold:
        fraction = 0.0
    elif main_projection <= 0:
        fraction = 1.0
    else:
        absorbed = min(absorbing_total, probe_projection - main_projection)
        fraction = float(np.clip(absorbed / (absorbed + main_projection), 0.0, 1.0))
    top = int(projections.argmax())
    full = (bool((latents[main].abs() < EPS).all()) and float(cos[top]) >= cfg["full_absorption_probe_cos_threshold"]
            and probe_projection > 0 and float(projections[top]) / probe_projection >= threshold)
    return fraction, full


def absorption_table(acts: torch.Tensor, index: pd.DataFrame, sae: dict, cfg: dict) -> tuple[pd.DataFrame, dict]:
    """One row per letter (ground-truth probe F1, main latents, absorption), plus the probes' summary."""
    train, test = (index["split"] == "train").to_numpy().copy(), (index["split"] == "test").to_numpy().copy()
    letters = index["letter"].to_numpy().copy()
    weights, biases = train_multi_probe(acts[train], letters[train], cfg["probe_epochs"], cfg["probe_batch_size"], cfg["seed"])
    probe_scores = acts[test] @ weights.T + biases
    latents = encode(sae, acts).float()
    sparse_weights, _ = train_multi_probe(latents[train], letters[train], cfg["k_sparse_probe_epochs"],
                                          cfg["probe_batch_size"], cfg["seed"], l1=cfg["k_sparse_probe_l1_decay"])
    z_train, z_test = latents[train].numpy(), latents[test].numpy()
    sparse = k_sparse_f1(z_train, letters[train], z_test, letters[test], sparse_weights, cfg["max_k_value"])
    w_dec = sae["W_dec"].float()
    test_acts, test_latents, test_letters = acts[test], latents[test], letters[test]
    rows = []
    for letter, by_k in sparse.items():
        truth = test_letters == letter
        gt_f1 = float(f1_score(truth, (probe_scores[:, letter] > 0).numpy(), zero_division=0.0))
        main = split_features(by_k, cfg["f1_jump_threshold"])
        direction = weights[letter] / weights[letter].norm()
        cos = torch.nn.functional.cosine_similarity(direction[None], w_dec, dim=-1)
        positives = np.flatnonzero(truth & (probe_scores[:, letter] > 0).numpy())
        results = [word_absorption(test_latents[i], cos, float(test_acts[i] @ direction), main, cfg) for i in positives]
        n = len(positives)
        rows.append({"letter": LETTERS[letter], "gt_probe_f1": gt_f1, "num_probe_true_positives": n,
                     "num_split_features": len(main), "split_features": main,
                     "mean_absorption_fraction": sum(r[0] for r in results) / n if n else float("nan"),
                     "num_full_absorption": sum(r[1] for r in results),
                     "full_absorption_rate": sum(r[1] for r in results) / n if n else float("nan"),
                     **{f"f1_sparse_sae_{k}": by_k[k][1] for k in by_k}})
    return pd.DataFrame(rows), {"gt_probe_mean_f1": float(np.mean([r["gt_probe_f1"] for r in rows])) if rows else None}


def _mean_and_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(statistics.mean(values), 6), round(statistics.stdev(values), 6) if len(values) > 1 else None


def absorption(sae: str, sae_name: str, acts: str, index: str, model_name: str, layer: int, eval_cfg: dict, out: str) -> None:
    """SAEBench's first-letter absorption metrics of the SAE at `sae`, written as SAEBench's JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    tensors = read_tensors(sae)
    check_sae(tensors)
    words = read_parquet(index)
    table, summary = absorption_table(read_tensors(acts)["acts"].float(), words, tensors, cfg)
    kept = table[(table["gt_probe_f1"] > cfg["min_gt_probe_f1"]) & (table["num_probe_true_positives"] > 0)]
    unstructured = {**summary, "letters_evaluated": kept["letter"].tolist(),
                    "k_sparse_probing": table.drop(columns=["split_features"]).round(6).to_dict("records")}
    if len(kept) < cfg["min_letters_for_eval"]:
        unstructured["not_evaluated"] = (f"only {len(kept)} letters have a ground-truth probe with F1 > {cfg['min_gt_probe_f1']} "
                                         f"(min_letters_for_eval {cfg['min_letters_for_eval']}): the model has too few "
                                         "reliable first-letter features at this layer")
        kept = kept.iloc[:0]
    fraction, fraction_sd = _mean_and_sd(kept["mean_absorption_fraction"].tolist())
    full, full_sd = _mean_and_sd(kept["full_absorption_rate"].tolist())
    splits, splits_sd = _mean_and_sd([float(v) for v in kept["num_split_features"]])
    metrics = {"mean": {"mean_absorption_fraction_score": fraction, "mean_full_absorption_score": full,
                        "mean_num_split_features": splits, "std_dev_absorption_fraction_score": fraction_sd,
                        "std_dev_full_absorption_score": full_sd, "std_dev_num_split_features": splits_sd}}
    details = [{"first_letter": r["letter"], "mean_absorption_fraction": round(r["mean_absorption_fraction"], 6),
                "full_absorption_rate": round(r["full_absorption_rate"], 6), "num_full_absorption": int(r["num_full_absorption"]),
                "num_probe_true_positives": int(r["num_probe_true_positives"]), "num_split_features": int(r["num_split_features"])}
               for r in kept.to_dict("records")]
    eval_config = {**cfg, "model_name": model_name, "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "n_train_words": int((words["split"] == "train").sum()), "n_test_words": int((words["split"] == "test").sum())}
    write_eval_output(out, "absorption_first_letter", eval_config, metrics, details, sae, sae_name, unstructured)
    print(f"absorption {sae_name}: {len(kept)} letters evaluated (ground-truth probe mean F1 {summary['gt_probe_mean_f1']}), "
          f"absorption fraction {fraction}, full absorption {full}, split features {splits}")
