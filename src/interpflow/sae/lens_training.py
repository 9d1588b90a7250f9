"""SAEs trained with sae_lens's own trainer (`SAETrainer`) on the workflow's cached activations.

sae_lens trains from any iterator of activation batches (its `DataProvider`), so the cached
residual stream feeds it directly: no model runs again. Architectures and their sparsity knob:

  standard  ReLU SAE with an L1 penalty (Bricken et al. 2023)      l1_coefficient
  topk      the k largest latents per token (Gao et al. 2024)       k
  batchtopk the k x batch largest latents per batch, saved with a
            learned threshold (Bussmann et al. 2024)                k
  jumprelu  a learned threshold per latent, L0 penalty (Rajamanoharan et al. 2024)  l0_coefficient

The trained SAE is saved by sae_lens as an inference SAE (BatchTopK becomes a JumpReLU SAE, as
sae_lens defines it) and converted into our format (pretrained.py).

Training sees the activations scaled so that their mean norm is sqrt(d) (what sae_lens's
`expected_average_only_in` normalisation does, with the factor measured on every token rather
than on one batch), so a sparsity coefficient means the same on every model and layer; the factor
is folded into the weights afterwards (sae_lens's `fold_activation_norm_scaling_factor`), so the
saved SAE reads the raw residual stream, as every method's direction does. sae_lens's trainer
starts the decoder bias at 0, which a residual stream far from the origin punishes (on planted
data with an offset, TopK explained 13% of the variance); we start it at the tokens' geometric
median, as our TopK trainer and the TopK paper do.
"""

from __future__ import annotations

import json
import math
import tempfile
from typing import Iterator

import torch

from interpflow.errors import ConfigError
from interpflow.sae.topk import geometric_median

ARCHITECTURES = ("standard", "topk", "batchtopk", "jumprelu")
SPARSITY = {"standard": "l1_coefficient", "topk": "k", "batchtopk": "k", "jumprelu": "l0_coefficient"}
# architecture-specific settings passed on to sae_lens's config when set
EXTRA = {"jumprelu": ("jumprelu_init_threshold", "jumprelu_bandwidth")}
KEYS = {"architecture", "n_latents", "l1_coefficient", "k", "l0_coefficient", "lr", "lr_end", "batch_size", "epochs",
        "lr_warm_up_steps", "seed", *(key for keys in EXTRA.values() for key in keys)}
GEOMEDIAN_TOKENS = 16_384


def _classes(architecture: str):
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    return {"standard": (StandardTrainingSAE, StandardTrainingSAEConfig),
            "topk": (TopKTrainingSAE, TopKTrainingSAEConfig),
            "batchtopk": (BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig),
            "jumprelu": (JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig)}[architecture]


def check_config(cfg: dict) -> None:
    architecture = cfg.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"sae architecture must be one of {ARCHITECTURES} for sae_lens's trainer, got {architecture!r}")
    knob = SPARSITY[architecture]
    if cfg.get(knob) is None:
        raise ConfigError(f"a {architecture} SAE needs `{knob}` (its sparsity)")
    others = sorted(set(SPARSITY.values()) - {knob} & {k for k, v in cfg.items() if v is not None})
    if others:
        raise ConfigError(f"a {architecture} SAE's sparsity is `{knob}`; remove {others}")


def batches(acts: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled batches of token activations, epoch after epoch (the trainer stops on its sample budget)."""
    while True:
        order = torch.randperm(len(acts), generator=generator)
        for start in range(0, len(acts) - batch_size + 1, batch_size):
            yield acts[order[start:start + batch_size]]


def train_with_sae_lens(acts: torch.Tensor, cfg: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Train one SAE on `acts` [n_tokens, d] with sae_lens's SAETrainer; our tensors and metadata."""
    from sae_lens import SAE
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    from interpflow.models.loading import choose_device
    from interpflow.sae.pretrained import from_sae_lens

    check_config(cfg)
    architecture = cfg["architecture"]
    batch_size = min(int(cfg.get("batch_size", 1024)), len(acts))
    samples = int(cfg.get("epochs", 1) * len(acts))
    lr = float(cfg.get("lr", 3e-4))
    torch.manual_seed(int(cfg.get("seed", 0)))  # sae_lens initialises the weights from torch's global generator
    training_cls, config_cls = _classes(architecture)
    knob = SPARSITY[architecture]
    extra = {key: cfg[key] for key in EXTRA.get(architecture, ()) if cfg.get(key) is not None}
    sae = training_cls(config_cls(d_in=acts.shape[1], d_sae=int(cfg["n_latents"]), **{knob: cfg[knob]}, **extra))
    scale = math.sqrt(acts.shape[1]) / float(acts.float().norm(dim=1).mean().clamp_min(1e-12))
    acts = acts.float() * scale
    with torch.no_grad():  # sae_lens's trainer starts b_dec at 0; like our TopK trainer (and the TopK paper), we
        sae.b_dec.copy_(geometric_median(acts[:GEOMEDIAN_TOKENS]))  # start it at the data's median
    trainer_cfg = SAETrainerConfig(
        total_training_samples=samples, train_batch_size_samples=batch_size, lr=lr,
        lr_end=float(cfg.get("lr_end") or lr), lr_warm_up_steps=int(cfg.get("lr_warm_up_steps", 0)),
        device=choose_device(), logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0,
        dead_feature_window=max(1, samples // batch_size // 4), feature_sampling_window=max(1, samples // batch_size),
        n_batches_for_norm_estimate=1)
    generator = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    trained = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches(acts, batch_size, generator)).fit()
    trained.fold_activation_norm_scaling_factor(scale)
    with tempfile.TemporaryDirectory() as folder:
        trained.save_inference_model(folder)
        inference = SAE.load_from_disk(folder)
    tensors, lens_meta = from_sae_lens(inference)
    metadata = {**lens_meta, "source": "train", "trainer": "sae_lens", "trained_architecture": architecture,
                "config": json.dumps({k: cfg[k] for k in sorted(cfg) if k in KEYS}, sort_keys=True)}
    return tensors, metadata
