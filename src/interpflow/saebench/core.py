"""SAEBench's `core` evaluation of one SAE at one (model, layer).

Two token sets, as in SAEBench:

- sparsity and variance: the cached activations of the run's latent-evaluation shards (each
  example's response tokens, read in its prompt), at most `sparsity_tokens` of them: L0, L1,
  explained variance, cosine, l2 norms and ratio, relative reconstruction bias, and per latent its
  firing density and consistent-activation heuristic (firings per example it fires in);
- reconstruction: `reconstruction_examples` whole examples (prompt and response) run through the
  model three times: clean, with the residual stream after block L replaced by the SAE's
  reconstruction, and with it zero-ablated. Cross-entropy of the next token and KL divergence
  from the clean distribution, per token, give SAEBench's scores:

      ce_loss_score = (CE_ablated - CE_sae) / (CE_ablated - CE_clean)    ("loss recovered")
      kl_div_score  = (KL_ablated - KL_sae) / KL_ablated

Where SAEBench's code and its metric's name disagree we compute the name's definition (README,
"SAE benchmark"): `explained_variance` is 1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2), and SAEBench's
`mse` (a token's squared error divided by the number of tokens in its batch, so it depends on the
batch size) is replaced by `mse_per_element`, the mean of (x - x_hat)^2 over tokens and dimensions.
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
    "batch_size": 8,
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


def example_batches(example_of_token: np.ndarray, tokens_per_batch: int) -> list[tuple[int, int]]:
    """(start, end) token ranges of about tokens_per_batch tokens that never split an example."""
    starts = np.flatnonzero(np.r_[True, example_of_token[1:] != example_of_token[:-1]])
    bounds, begin = [], 0
    for start in starts[1:]:
        if start - begin >= tokens_per_batch:
            bounds.append((begin, int(start)))
            begin = int(start)
    bounds.append((begin, len(example_of_token)))
    return bounds


@torch.no_grad()
def sparsity_and_variance(sae: dict, x: torch.Tensor, example_of_token: np.ndarray, batch: int = 4096) -> tuple[dict, dict]:
    n_latents = sae["W_enc"].shape[1]
    sums = {k: 0.0 for k in ("l0", "l1", "l2_in", "l2_out", "l2_ratio", "cossim", "sq_error", "xhat_sq", "x_dot_xhat", "x_sq", "legacy_ev")}
    fires = torch.zeros(n_latents, dtype=torch.float64)
    fired_in = torch.zeros(n_latents, dtype=torch.float64)  # examples in which each latent fires at least once
    mean = x.mean(dim=0)
    for start, end in example_batches(example_of_token, batch):
        h = x[start:end]
        z = encode(sae, h)
        h_hat = decode(sae, z)
        error = ((h - h_hat) ** 2).sum(-1)
        norm_in, norm_out = h.norm(dim=-1), h_hat.norm(dim=-1)
        active = (z > 0).float()
        sums["l0"] += float((z != 0).sum())
        sums["l1"] += float(z.sum())
        sums["l2_in"] += float(norm_in.sum())
        sums["l2_out"] += float(norm_out.sum())
        sums["l2_ratio"] += float((norm_out / torch.where(norm_in.abs() < 1e-4, torch.ones_like(norm_in), norm_in)).sum())
        sums["cossim"] += float(torch.nn.functional.cosine_similarity(h, h_hat, dim=-1).sum())
        sums["sq_error"] += float(error.sum())
        sums["xhat_sq"] += float((norm_out**2).sum())
        sums["x_dot_xhat"] += float((h * h_hat).sum())
        sums["x_sq"] += float((norm_in**2).sum())
        sums["legacy_ev"] += float((1 - error / ((h - mean) ** 2).sum(-1).clamp_min(1e-12)).sum())
        fires += active.sum(0).double()
        _, local = np.unique(example_of_token[start:end], return_inverse=True)
        per_example = torch.zeros(int(local.max()) + 1, n_latents).index_add_(0, torch.from_numpy(local), active)
        fired_in += (per_example > 0).sum(0).double()
    n = len(x)
    total_variance = sums["x_sq"] / n - float((mean.double() ** 2).sum())
    metrics = {
        "l0": sums["l0"] / n, "l1": sums["l1"] / n,
        "l2_norm_in": sums["l2_in"] / n, "l2_norm_out": sums["l2_out"] / n, "l2_ratio": sums["l2_ratio"] / n,
        "relative_reconstruction_bias": (sums["xhat_sq"] / n) / (sums["x_dot_xhat"] / n) if sums["x_dot_xhat"] else float("nan"),
        "explained_variance": 1 - (sums["sq_error"] / n) / total_variance,
        "explained_variance_legacy": sums["legacy_ev"] / n,
        "mse_per_element": sums["sq_error"] / (n * x.shape[1]),
        "cossim": sums["cossim"] / n,
        "tokens": n,
    }
    density = fires / n
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


@torch.no_grad()
def reconstruction_losses(sae: dict, model, tokenizer, layer: int, examples: list, batch_size: int,
                          exclude_special: bool) -> dict:
    """Mean next-token CE (clean, SAE spliced in, zero-ablated) and mean KL from the clean distribution,
    over every position whose token is not BOS/EOS/padding (SAEBench's ignore_tokens)."""
    special = torch.tensor(sorted({t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
                                   if t is not None}), dtype=torch.long)
    sums = {k: 0.0 for k in ("ce_clean", "ce_sae", "ce_ablation", "kl_sae", "kl_ablation")}
    counted = 0
    order = sorted(examples, key=lambda e: len(e.input_ids))
    for start in range(0, len(order), batch_size):
        ids, mask = _padded(order[start : start + batch_size], tokenizer.pad_token_id or 0)
        ids, mask = ids.to(model.device), mask.to(model.device)
        ordinary = mask & ~torch.isin(ids, special.to(ids.device))
        splice_at = ordinary if exclude_special else mask

        def run(edit=None):
            if edit is None:
                logits = model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits
            else:
                with edit_residual(model, layer, edit):
                    logits = model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits
            return torch.log_softmax(logits[:, :-1].float(), dim=-1)

        def spliced(hidden):
            rebuilt = decode(sae, encode(sae, hidden)).to(hidden.dtype)
            return torch.where(splice_at[..., None], rebuilt, hidden)

        scored = ordinary[:, :-1] & mask[:, 1:]  # a prediction from an ordinary token of a real next token
        targets = ids[:, 1:, None]
        clean = run()
        for name, logp in (("clean", clean), ("sae", run(spliced)), ("ablation", run(torch.zeros_like))):
            sums[f"ce_{name}"] += float((-logp.gather(-1, targets)[..., 0])[scored].sum())
            if name != "clean":
                kl = (clean.exp() * (clean - logp)).sum(-1)
                sums[f"kl_{name}"] += float(kl[scored].sum())
        counted += int(scored.sum())
    means = {k: v / max(counted, 1) for k, v in sums.items()}
    return {
        "kl_div_with_sae": means["kl_sae"], "kl_div_with_ablation": means["kl_ablation"],
        "kl_div_score": (means["kl_ablation"] - means["kl_sae"]) / means["kl_ablation"] if means["kl_ablation"] else float("nan"),
        "ce_loss_with_sae": means["ce_sae"], "ce_loss_with_ablation": means["ce_ablation"],
        "ce_loss_without_sae": means["ce_clean"],
        "ce_loss_score": ((means["ce_ablation"] - means["ce_sae"]) / (means["ce_ablation"] - means["ce_clean"])
                          if means["ce_ablation"] != means["ce_clean"] else float("nan")),
        "tokens": counted,
    }


def _number(value: float) -> float | None:
    return None if value != value else round(float(value), 6)  # NaN -> null in the JSON


def core(model_dir: str, model_cfg: dict, layer: int, sae: str, sae_name: str, acts: list[str], index: list[str],
         data: list[str], eval_cfg: dict, out: str) -> None:
    """SAEBench's core metrics of the SAE at `sae` on the model's residual stream after block `layer`,
    written as SAEBench's core JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    tensors = read_tensors(sae)
    check_sae(tensors)
    tokens, owners = read_cached(acts, index, cfg["sparsity_tokens"], cfg["seed"])
    sparsity, features = sparsity_and_variance(tensors, tokens, owners)
    weights = weight_metrics(tensors)

    frame = pd.concat([read_parquet(p) for p in data], ignore_index=True)
    frame = frame.sample(n=min(cfg["reconstruction_examples"], len(frame)), random_state=cfg["seed"])
    model, tokenizer = load_model(model_dir, model_cfg["dtype"])
    examples = scored_examples(tokenizer, model_cfg, frame["input"].tolist(), frame["output"].tolist(), cfg["max_length"])
    losses = reconstruction_losses(tensors, model, tokenizer, layer, examples, cfg["batch_size"],
                                   cfg["exclude_special_tokens_from_reconstruction"])

    metrics = {
        "model_behavior_preservation": {k: losses[k] for k in ("kl_div_score", "kl_div_with_ablation", "kl_div_with_sae")},
        "model_performance_preservation": {k: losses[k] for k in ("ce_loss_score", "ce_loss_with_ablation", "ce_loss_with_sae",
                                                                   "ce_loss_without_sae")},
        "reconstruction_quality": {k: sparsity[k] for k in ("explained_variance", "explained_variance_legacy",
                                                             "mse_per_element", "cossim")},
        "shrinkage": {k: sparsity[k] for k in ("l2_norm_in", "l2_norm_out", "l2_ratio", "relative_reconstruction_bias")},
        "sparsity": {"l0": sparsity["l0"], "l1": sparsity["l1"]},
        "token_stats": {"total_tokens_eval_reconstruction": losses["tokens"],
                        "total_tokens_eval_sparsity_variance": sparsity["tokens"]},
        "misc_metrics": misc_metrics(features["feature_density"], weights),
    }
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
