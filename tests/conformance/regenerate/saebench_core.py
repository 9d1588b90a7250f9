"""Regenerate tests/conformance/fixtures/saebench_core/topk.json with sae-bench 0.6.0's own `core` code.

Run it with the Python of a throwaway environment that has sae-bench 0.6.0 (not the project's):
see docs/benchmarks/sae.md, "Conformance with SAEBench". It imports nothing of interpflow.

The inputs are fixed and small: a seeded TopK SAE (SAEBench's own `custom_saes.topk_sae.TopKSAE`),
rows of token ids with BOS/EOS/PAD among them, the residual stream of every row at the SAE's hook,
and a linear unembedding. A stand-in model hands SAEBench's functions those residuals (run_with_cache)
and turns residuals into logits, (r_t + mean of r_1..r_t) / 2 @ W_U + b_U (its hooks applied to r
first; CE per token by TransformerLens's own lm_cross_entropy_loss); a stand-in activation store hands out the rows in
order. Everything that turns them into metrics is SAEBench's: `run_evals` (reconstruction and
sparsity/variance metrics, token_stats, per-latent metrics) and `calculate_misc_metrics`.

    python tests/conformance/regenerate/saebench_core.py [--out tests/conformance/fixtures/saebench_core]
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import torch
from transformer_lens.utils import lm_cross_entropy_loss

from sae_bench.custom_saes.topk_sae import TopKSAE
from sae_bench.evals.core.eval_config import CoreEvalConfig
from sae_bench.evals.core.main import calculate_misc_metrics, run_evals

BOS, EOS, PAD = 0, 1, 2
SHAPE = {"d_model": 16, "d_sae": 64, "k": 4, "vocab": 24, "rows": 12, "context": 10, "layer": 3}
CASES = {  # fixture name -> the eval config it runs
    "topk_exclude_special": {"batch_size_prompts": 4, "n_eval_reconstruction_batches": 3, "n_eval_sparsity_variance_batches": 2,
                             "exclude_special_tokens_from_reconstruction": True},
    "topk_splice_everywhere": {"batch_size_prompts": 3, "n_eval_reconstruction_batches": 4, "n_eval_sparsity_variance_batches": 3,
                               "exclude_special_tokens_from_reconstruction": False},
}


def fixed_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    d, n, rows, ctx, vocab = SHAPE["d_model"], SHAPE["d_sae"], SHAPE["rows"], SHAPE["context"], SHAPE["vocab"]
    tokens = torch.randint(3, vocab, (rows, ctx), generator=g)
    tokens[:, 0] = BOS
    tokens[2, 4] = tokens[5, 7] = tokens[9, 2] = EOS
    tokens[7, 5] = PAD
    tokens[4, -1] = EOS  # a last position that is special
    residual = torch.randn(rows, ctx, d, generator=g) + torch.linspace(-2.0, 3.0, d)
    residual[:, 0] *= 10.0
    directions = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    return {
        "tokens": tokens,
        "residual": residual,  # a shared offset, as residual streams have, and a BOS position of larger norm
        "W_U": torch.randn(d, vocab, generator=g) / d**0.5,
        "b_U": 0.5 * torch.randn(vocab, generator=g),
        # a tied SAE centred near the data's mean, so that it reconstructs something
        "W_enc": directions.T.contiguous(),
        "b_enc": 0.1 * torch.randn(n, generator=g),
        "W_dec": directions,
        "b_dec": torch.linspace(-2.0, 3.0, d) + 0.1 * torch.randn(d, generator=g),
    }


class StandInModel:
    """A 'model' whose residual at the hook is fixed per row and whose logits are a linear readout of it."""

    def __init__(self, inputs: dict[str, torch.Tensor], hook_name: str):
        self.inputs, self.hook_name = inputs, hook_name
        self.row_of = {tuple(row.tolist()): i for i, row in enumerate(inputs["tokens"])}

    def residual(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.inputs["residual"][[self.row_of[tuple(row.tolist())] for row in tokens]].clone()

    def _logits_and_loss(self, tokens, residual):
        # each position reads itself and the mean of the positions up to it (a causal mix, so that
        # what is spliced at one position reaches later ones, as attention carries it)
        mixed = (residual + residual.cumsum(1) / torch.arange(1, residual.shape[1] + 1)[:, None]) / 2
        logits = mixed @ self.inputs["W_U"] + self.inputs["b_U"]
        return logits, lm_cross_entropy_loss(logits, tokens, per_token=True)

    def __call__(self, tokens, return_type="both", loss_per_token=True, **_):
        return self._logits_and_loss(tokens, self.residual(tokens))

    def run_with_hooks(self, tokens, return_type="both", fwd_hooks=(), loss_per_token=True, **_):
        residual = self.residual(tokens)
        for name, hook in fwd_hooks:
            assert name == self.hook_name
            residual = hook(residual, hook=None)
        return self._logits_and_loss(tokens, residual)

    def run_with_cache(self, tokens, names_filter=(), **_):
        return None, {self.hook_name: self.residual(tokens)}


class StandInStore:
    """Hands out the fixed rows in order, from the start again after reset_input_dataset (as SAEBench's store)."""

    def __init__(self, tokens: torch.Tensor, batch_size_prompts: int):
        self.tokens, self.store_batch_size_prompts, self.context_size = tokens, batch_size_prompts, tokens.shape[1]
        self.cursor = 0

    def get_batch_tokens(self, n: int) -> torch.Tensor:
        batch = self.tokens[self.cursor : self.cursor + n]
        assert len(batch) == n, "the fixture has too few rows for this config"
        self.cursor += n
        return batch

    def reset_input_dataset(self) -> None:
        self.cursor = 0


def saebench_core(inputs: dict[str, torch.Tensor], settings: dict) -> dict:
    sae = TopKSAE(SHAPE["d_model"], SHAPE["d_sae"], SHAPE["k"], "stand-in", SHAPE["layer"], torch.device("cpu"), torch.float32)
    with torch.no_grad():
        for key in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(sae, key).copy_(inputs[key])
    # 0.6.0's get_featurewise_weight_based_metrics reads cfg.architecture_str (sae_lens's name), which its own
    # CustomSAEConfig lacks; it only compares it with "gated"
    sae.cfg.architecture_str = "topk"
    config = CoreEvalConfig(compute_kl=True, compute_ce_loss=True, compute_l2_norms=True, compute_sparsity_metrics=True,
                            compute_variance_metrics=True, compute_featurewise_density_statistics=True,
                            compute_featurewise_weight_based_metrics=True, **settings)
    model = StandInModel(inputs, sae.cfg.hook_name)
    store = StandInStore(inputs["tokens"], settings["batch_size_prompts"])
    metrics, features = run_evals(sae, store, model, config, ignore_tokens={PAD, EOS, BOS})
    metrics["misc_metrics"] = calculate_misc_metrics(features)
    return {"metrics": metrics, "feature_metrics": {k: [float(v) for v in values] for k, values in features.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "fixtures" / "saebench_core"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = fixed_inputs()
    fixture = {
        "produced_by": "tests/conformance/regenerate/saebench_core.py: sae-bench's own run_evals and calculate_misc_metrics",
        "versions": {p: version(p) for p in ("sae-bench", "sae-lens", "transformer-lens", "torch", "numpy")},
        "special_tokens": {"bos": BOS, "eos": EOS, "pad": PAD},
        "shape": SHAPE,
        "inputs": {k: v.tolist() for k, v in inputs.items()},
        "cases": {name: {"settings": settings, **saebench_core(inputs, settings)} for name, settings in CASES.items()},
    }
    path = out / "topk.json"
    path.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
