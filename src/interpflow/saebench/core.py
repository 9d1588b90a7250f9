"""SAEBench's `core` evaluation of one SAE at one (model, layer).

Two token sets, as in SAEBench:

- sparsity and variance: the cached activations of the run's latent-evaluation shards (each
  example's response tokens, read in its prompt), at most `sparsity_tokens` of them, taken in
  batches of `batch_size` examples (SAEBench's batches of prompts): L0, L1, explained variance,
  MSE, cosine, l2 norms and ratio, relative reconstruction bias, and per latent its firing density
  and consistent-activation heuristic (firings per example it fires in);
- reconstruction: `reconstruction_examples` whole examples (prompt and response) run through the
  model three times: clean, with the residual stream after block L replaced by the SAE's
  reconstruction, and with it zero-ablated. Cross-entropy of the next token and KL divergence
  from the clean distribution, per token, give SAEBench's scores:

      ce_loss_score = (CE_ablated - CE_sae) / (CE_ablated - CE_clean)    ("loss recovered")
      kl_div_score  = (KL_ablated - KL_sae) / KL_ablated

Every key SAEBench 0.6.0 writes is computed as its `evals/core/main.py` computes it, including where
the formula is not what the name says (docs/benchmarks/sae.md; checked against sae-bench's own code
by tests/conformance/test_conformance_saebench_core.py):

- `explained_variance` = 1 - A_err / (A - (A / d)^2), where A is the mean over batches of each
  batch's mean ||x||^2 and A_err the same of ||x - x_hat||^2; (A / d)^2 is the square of the mean
  squared entry, not ||E x||^2. The textbook fraction of variance explained,
  1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2) over all tokens, is `explained_variance_centered`.
- `explained_variance_legacy`: per token 1 - ||x - x_hat||^2 / ||x - mean of its batch||^2, averaged.
- `relative_reconstruction_bias`: per batch mean ||x_hat||^2 / mean x.x_hat, averaged over batches.
- `mse`: per token ||x - x_hat||^2 divided by the number of tokens in its batch, averaged (so it
  depends on the batch size); `mse_per_element`, the mean of (x - x_hat)^2, is ours.
- KL is scored at every position whose token is not BOS/EOS/padding, the last one included; CE at
  every such position that has a next token.
- `token_stats` count every token run (special ones included), as SAEBench counts its contexts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from interpflow.artifacts import open_tensors, read_parquet, read_tensors
from interpflow.models.hooks import edit_residual
from interpflow.models.loading import load_model
from interpflow.sae.format import check_sae, decode, encode
from interpflow.saebench.output import write_eval_output
from interpflow.stages.activations import scored_examples

DEFAULTS = {
    "sparsity_tokens": 16_384,        # SAEBench: 1 batch of 16 prompts x 128 tokens for these metrics
    "reconstruction_examples": 32,    # SAEBench: 10 batches of 16 prompts x 128 tokens
    "batch_size": 8,                  # examples per forward pass and per batch of the per-batch metrics
    "max_length": 128,                # SAEBench's context_size
    "exclude_special_tokens_from_reconstruction": True,
    "seed": 0,
}


def read_cached(acts_files: list[str], index_files: list[str], max_tokens: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Tokens [n, d] of whole examples (a seeded sample of examples up to max_tokens) and each token's example number."""
    tokens, owners, example = [], [], 0
    for acts_path, index_path in zip(acts_files, index_files):
        index = read_parquet(index_path)
        with open_tensors(acts_path) as f:
            acts = f.get_tensor("acts")
        for offset, n in zip(index["offset"], index["n_tokens"]):
            tokens.append(acts[int(offset) : int(offset) + int(n)])
            owners.append(np.full(int(n), example))
            example += 1
    order = np.random.default_rng(seed).permutation(len(tokens))
    kept, total = [], 0
    for i in order:
        if total >= max_tokens:
            break
        kept.append(i)
        total += len(tokens[i])
    kept.sort()
    return torch.cat([tokens[i] for i in kept]).float(), np.concatenate([owners[i] for i in kept])


def prompt_batches(example_of_token: np.ndarray, prompts_per_batch: int) -> list[tuple[int, int]]:
    """(start, end) token ranges of `prompts_per_batch` consecutive examples each (the last may hold fewer)."""
    starts = np.flatnonzero(np.r_[True, example_of_token[1:] != example_of_token[:-1]])
    bounds = [int(s) for s in starts[::prompts_per_batch]] + [len(example_of_token)]
    return list(zip(bounds[:-1], bounds[1:]))


def _per_token(h: torch.Tensor, h_hat: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """SAEBench's per-token values of one batch (every token of the batch is scored)."""
    error = ((h - h_hat) ** 2).sum(-1)
    norm_in, norm_out = h.norm(dim=-1), h_hat.norm(dim=-1)
    return {
        "l0": (z != 0).sum(-1).float(),
        "l1": z.sum(-1),
        "l2_norm_in": norm_in,
        "l2_norm_out": norm_out,
        "l2_ratio": norm_out / torch.where(norm_in.abs() < 1e-4, torch.ones_like(norm_in), norm_in),
        "explained_variance_legacy": 1 - error / ((h - h.mean(dim=0)) ** 2).sum(-1),
        "mse": error / len(h),
        "cossim": ((h / norm_in[:, None]) * (h_hat / norm_out[:, None])).sum(-1),
        "squared_error": error,
    }


@torch.no_grad()
def sparsity_and_variance(sae: dict, x: torch.Tensor, example_of_token: np.ndarray, prompts_per_batch: int,
                          scored: torch.Tensor | None = None) -> tuple[dict, dict]:
    """SAEBench's sparsity and variance metrics of tokens x [n, d] (example_of_token [n] says whose each is),
    in batches of `prompts_per_batch` examples; `scored` [n] marks the tokens to score (SAEBench skips
    BOS/EOS/padding), all by default."""
    n_latents, d = sae["W_enc"].shape[1], x.shape[1]
    scored = torch.ones(len(x), dtype=torch.bool) if scored is None else scored
    per_token: dict[str, list[torch.Tensor]] = {}
    per_batch: dict[str, list[float]] = {"relative_reconstruction_bias": [], "mean_sq_norm": [], "mean_sq_error": []}
    fires = torch.zeros(n_latents, dtype=torch.float64)
    fired_in = torch.zeros(n_latents, dtype=torch.float64)  # examples in which each latent fires at least once
    for start, end in prompt_batches(example_of_token, prompts_per_batch):
        keep = scored[start:end]
        if not keep.any():
            continue
        h = x[start:end][keep].float()
        z = encode(sae, h)
        h_hat = decode(sae, z)
        values = _per_token(h, h_hat, z)
        for key, value in values.items():
            per_token.setdefault(key, []).append(value.double())
        per_batch["relative_reconstruction_bias"].append(float((h_hat.norm(dim=-1) ** 2).mean() / (h * h_hat).sum(-1).mean()))
        per_batch["mean_sq_norm"].append(float((h**2).sum(-1).mean()))
        per_batch["mean_sq_error"].append(float(values["squared_error"].mean()))
        active = (z > 0).double()
        fires += active.sum(0)
        _, local = np.unique(example_of_token[start:end][keep.numpy()], return_inverse=True)
        per_example = torch.zeros(int(local.max()) + 1, n_latents, dtype=torch.float64).index_add_(0, torch.from_numpy(local), active)
        fired_in += (per_example > 0).sum(0).double()
    tokens = {key: torch.cat(values) for key, values in per_token.items()}
    metrics = {key: float(values.mean()) for key, values in tokens.items() if key != "squared_error"}
    mean_sq_norm = float(np.mean(per_batch["mean_sq_norm"]))
    mean_sq_error = float(np.mean(per_batch["mean_sq_error"]))
    metrics["explained_variance"] = 1 - mean_sq_error / (mean_sq_norm - (mean_sq_norm / d) ** 2)
    metrics["relative_reconstruction_bias"] = float(np.mean(per_batch["relative_reconstruction_bias"]))
    kept = x[scored].double()
    centered_variance = float((kept**2).sum(-1).mean()) - float((kept.mean(dim=0) ** 2).sum())
    metrics["explained_variance_centered"] = 1 - float(tokens["squared_error"].mean()) / centered_variance
    metrics["mse_per_element"] = float(tokens["squared_error"].mean()) / d
    metrics["tokens"] = len(x)
    density = fires / int(scored.sum())
    consistency = torch.where(fired_in > 0, fires / fired_in.clamp_min(1), torch.full_like(fires, float("nan")))
    return metrics, {"feature_density": density, "consistent_activation_heuristic": consistency}


def max_cosine_to_others(vectors: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For each row, its largest cosine similarity with any other row."""
    unit = torch.nn.functional.normalize(vectors.float(), dim=-1)
    out = torch.empty(len(unit))
    for start in range(0, len(unit), chunk):
        sims = unit[start : start + chunk] @ unit.T
        rows = torch.arange(start, min(start + chunk, len(unit)))
        sims[rows - start, rows] = -float("inf")
        out[start : start + chunk] = sims.max(dim=1).values
    return out


def weight_metrics(sae: dict) -> dict[str, torch.Tensor]:
    enc, dec = sae["W_enc"].float().T, sae["W_dec"].float()  # one row per latent, both
    return {
        "encoder_bias": sae["b_enc"].float(),
        "encoder_norm": enc.norm(dim=-1),
        "encoder_decoder_cosine_sim": torch.nn.functional.cosine_similarity(enc, dec, dim=-1),
        "max_encoder_cosine_sim": max_cosine_to_others(enc),
        "max_decoder_cosine_sim": max_cosine_to_others(dec),
    }


def misc_metrics(density: torch.Tensor, weights: dict[str, torch.Tensor]) -> dict:
    total = float(density.sum())
    return {
        "freq_over_1_percent": float((density > 0.01).float().mean()),
        "freq_over_10_percent": float((density > 0.1).float().mean()),
        "normalized_freq_over_1_percent": float(density[density > 0.01].sum()) / total if total else 0.0,
        "normalized_freq_over_10_percent": float(density[density > 0.1].sum()) / total if total else 0.0,
        "average_max_encoder_cosine_sim": float(weights["max_encoder_cosine_sim"].mean()),
        "average_max_decoder_cosine_sim": float(weights["max_decoder_cosine_sim"].mean()),
        "frac_alive": float((density > 0).float().mean()),
    }


def _padded(examples: list, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, example in enumerate(examples):
        ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        mask[row, : len(example.input_ids)] = True
    return ids, mask


def scored_positions(ids: torch.Tensor, attention: torch.Tensor, special: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where SAEBench scores KL [b, T] (every real token that is not BOS/EOS/padding, the last one
    included) and CE [b, T-1] (those of them that predict a real next token)."""
    ordinary = attention & ~torch.isin(ids, special.to(ids.device))
    return ordinary, ordinary[:, :-1] & attention[:, 1:]


RUNS = ("clean", "sae", "ablation")


def tally_batch(sums: dict, ids: torch.Tensor, attention: torch.Tensor, special: torch.Tensor,
                logits: dict[str, torch.Tensor]) -> None:
    """Add one batch's summed CE and KL (logits [b, T, vocab] of the clean, SAE and ablation runs) to `sums`."""
    logp = {run: torch.log_softmax(logits[run].float(), dim=-1) for run in RUNS}
    kl_at, ce_at = scored_positions(ids, attention, special)
    targets = ids[:, 1:, None]
    for run in RUNS:
        ce = -logp[run][:, :-1].gather(-1, targets)[..., 0]
        sums[f"ce_{run}"] = sums.get(f"ce_{run}", 0.0) + float(ce[ce_at].double().sum())
        if run != "clean":
            kl = (logp["clean"].exp() * (logp["clean"] - logp[run])).sum(-1)
            sums[f"kl_{run}"] = sums.get(f"kl_{run}", 0.0) + float(kl[kl_at].double().sum())
    for key, count in (("ce_positions", ce_at.sum()), ("kl_positions", kl_at.sum()), ("tokens", attention.sum())):
        sums[key] = sums.get(key, 0) + int(count)


def reconstruction_scores(sums: dict) -> dict:
    """SAEBench's CE and KL metrics from the sums of tally_batch."""
    ce = {run: sums[f"ce_{run}"] / max(sums["ce_positions"], 1) for run in RUNS}
    kl = {run: sums[f"kl_{run}"] / max(sums["kl_positions"], 1) for run in ("sae", "ablation")}
    return {
        "kl_div_with_sae": kl["sae"], "kl_div_with_ablation": kl["ablation"],
        "kl_div_score": (kl["ablation"] - kl["sae"]) / kl["ablation"] if kl["ablation"] else float("nan"),
        "ce_loss_with_sae": ce["sae"], "ce_loss_with_ablation": ce["ablation"], "ce_loss_without_sae": ce["clean"],
        "ce_loss_score": ((ce["ablation"] - ce["sae"]) / (ce["ablation"] - ce["clean"])
                          if ce["ablation"] != ce["clean"] else float("nan")),
        "tokens": sums["tokens"],
    }


def spliced(sae: dict, hidden: torch.Tensor, splice_at: torch.Tensor) -> torch.Tensor:
    """The residual [b, T, d] with the SAE's reconstruction where splice_at [b, T] holds, its own elsewhere."""
    rebuilt = decode(sae, encode(sae, hidden)).to(hidden.dtype)
    return torch.where(splice_at[..., None], rebuilt, hidden)


@torch.no_grad()
def reconstruction_losses(sae: dict, model, tokenizer, layer: int, examples: list, batch_size: int,
                          exclude_special: bool) -> dict:
    """Mean next-token CE (clean, SAE spliced in, zero-ablated) and mean KL from the clean distribution,
    at SAEBench's positions (scored_positions), and the number of tokens run."""
    special = torch.tensor(sorted({t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
                                   if t is not None}), dtype=torch.long)
    sums: dict = {}
    order = sorted(examples, key=lambda e: len(e.input_ids))
    for start in range(0, len(order), batch_size):
        ids, mask = _padded(order[start : start + batch_size], tokenizer.pad_token_id or 0)
        ids, mask = ids.to(model.device), mask.to(model.device)
        splice_at = mask & ~torch.isin(ids, special.to(ids.device)) if exclude_special else mask

        def run(edit=None):
            if edit is None:
                return model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits
            with edit_residual(model, layer, edit):
                return model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits

        logits = {"clean": run(), "sae": run(lambda hidden: spliced(sae, hidden, splice_at)), "ablation": run(torch.zeros_like)}
        tally_batch(sums, ids, mask, special, logits)
    return reconstruction_scores(sums)


def _number(value: float) -> float | None:
    return None if value != value else float(value)  # NaN -> null in the JSON; no rounding


def metric_groups(losses: dict, sparsity: dict, density: torch.Tensor, weights: dict[str, torch.Tensor]) -> dict:
    """SAEBench's `eval_result_metrics` (its groups and keys), with our own extra keys beside its ones."""
    return {
        "model_behavior_preservation": {k: losses[k] for k in ("kl_div_score", "kl_div_with_ablation", "kl_div_with_sae")},
        "model_performance_preservation": {k: losses[k] for k in ("ce_loss_score", "ce_loss_with_ablation", "ce_loss_with_sae",
                                                                   "ce_loss_without_sae")},
        "reconstruction_quality": {k: sparsity[k] for k in ("explained_variance", "explained_variance_legacy", "mse", "cossim",
                                                             "explained_variance_centered", "mse_per_element")},
        "shrinkage": {k: sparsity[k] for k in ("l2_norm_in", "l2_norm_out", "l2_ratio", "relative_reconstruction_bias")},
        "sparsity": {"l0": sparsity["l0"], "l1": sparsity["l1"]},
        "token_stats": {"total_tokens_eval_reconstruction": losses["tokens"],
                        "total_tokens_eval_sparsity_variance": sparsity["tokens"]},
        "misc_metrics": misc_metrics(density, weights),
    }


def core(model_dir: str, model_cfg: dict, layer: int, sae: str, sae_name: str, acts: list[str], index: list[str],
         data: list[str], eval_cfg: dict, out: str) -> None:
    """SAEBench's core metrics of the SAE at `sae` on the model's residual stream after block `layer`,
    written as SAEBench's core JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    tensors = read_tensors(sae)
    check_sae(tensors)
    tokens, owners = read_cached(acts, index, cfg["sparsity_tokens"], cfg["seed"])
    sparsity, features = sparsity_and_variance(tensors, tokens, owners, cfg["batch_size"])
    weights = weight_metrics(tensors)

    frame = pd.concat([read_parquet(p) for p in data], ignore_index=True)
    frame = frame.sample(n=min(cfg["reconstruction_examples"], len(frame)), random_state=cfg["seed"])
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    examples = scored_examples(tokenizer, model_cfg, frame["input"].tolist(), frame["output"].tolist(), cfg["max_length"])
    losses = reconstruction_losses(tensors, model, tokenizer, layer, examples, cfg["batch_size"],
                                   cfg["exclude_special_tokens_from_reconstruction"])

    metrics = metric_groups(losses, sparsity, features["feature_density"], weights)
    metrics = {group: {k: v if isinstance(v, int) else _number(v) for k, v in values.items()} for group, values in metrics.items()}
    columns = {**features, **weights}
    details = [{"index": i, **{k: _number(v[i]) for k, v in columns.items()}} for i in range(tensors["W_enc"].shape[1])]
    eval_config = {**cfg, "model_name": model_cfg["name"], "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "dataset": "the run's latent-evaluation data", "llm_dtype": model_cfg["dtype"]}
    write_eval_output(out, "core", eval_config, metrics, details, sae, sae_name)
    print(f"core {sae_name}: L0 {metrics['sparsity']['l0']:.1f}, explained variance "
          f"{metrics['reconstruction_quality']['explained_variance']:.3f}, loss recovered "
          f"{metrics['model_performance_preservation']['ce_loss_score']}, KL score "
          f"{metrics['model_behavior_preservation']['kl_div_score']}, alive {metrics['misc_metrics']['frac_alive']:.3f}")
