"""A compact TopK sparse autoencoder trainer (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders"), for activations already in memory: [n_tokens, d].

    z = TopK(relu((x - b_dec) @ W_enc + b_enc)),   x_hat = z @ W_dec + b_dec

Following the paper: b_dec starts at the geometric median of the data, decoder rows are random
unit vectors kept unit-norm (the gradient component parallel to each row is removed before every
step, rows are renormalised after), the encoder starts as the decoder's transpose, Adam with
lr = 2e-4 / sqrt(n_latents / 2^14), and the AuxK loss (weight 1/32) reconstructs the residual
with the top-k_aux dead latents so they come back to life.

Inputs are divided by one scalar so the mean squared norm is d (Anthropic, April 2024 update),
which makes the learning rate mean the same across models; the scale is folded back on export,
so the exported SAE reads raw activations, keeps unit-norm decoder rows and its latents are in
raw units. Only the k selected latents of each token carry gradient (gathered, never a dense
[batch, n_latents] backward), so a 4096-latent SAE on 50k tokens x 576 trains in about a minute
on two CPU cores.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.functional import embedding_bag

from interpflow.errors import ConfigError


@dataclass
class TopKConfig:
    n_latents: int = 4096
    """Dictionary size."""
    k: int = 32
    """Active latents per token."""
    epochs: int = 4
    """Passes over the tokens."""
    batch_size: int = 1024
    """Tokens per Adam step."""
    lr: float | None = None
    """Adam learning rate; None: 2e-4 / sqrt(n_latents / 2^14) (the paper's scaling)."""
    aux_k: int = 256
    """Dead latents used by the AuxK loss (paper: 512); 0 disables it."""
    aux_coef: float = 1 / 32
    """Weight of the AuxK loss (paper: 1/32)."""
    dead_tokens: int = 20_000
    """A latent is dead when it has not fired for this many tokens (paper: 10M)."""
    b_dec_init: str = "median"
    """"median" (geometric median, the paper) or "mean"."""
    seed: int = 0

    @classmethod
    def from_dict(cls, cfg: dict) -> "TopKConfig":
        return cls(**{k: v for k, v in cfg.items() if k in cls.__dataclass_fields__})

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(self.n_latents / 2**14)


def geometric_median(x: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """Weiszfeld's algorithm on the rows of x."""
    median = x.mean(dim=0)
    for _ in range(iterations):
        weights = 1 / (x - median).norm(dim=1).clamp_min(1e-8)
        median = (weights[:, None] * x).sum(dim=0) / weights.sum()
    return median


def scatter_rows(indices: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """out[i] = sum over (b, j) with indices[b, j] == i of weights[b, j] * rows[b]: [n, d], by a sparse matmul."""
    batch, k = indices.shape
    token = torch.arange(batch).repeat_interleave(k)
    sparse = torch.sparse_coo_tensor(torch.stack([indices.flatten(), token]), weights.flatten(), (n, batch),
                                     check_invariants=False)
    return torch.sparse.mm(sparse, rows)


def gathered_dot(vectors: torch.Tensor, table: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """out[b, j] = vectors[b] . table[indices[b, j]]: [batch, k]."""
    return torch.einsum("bd,bkd->bk", vectors, table[indices])


class SelectedLatents(torch.autograd.Function):
    """values[b, j] = centred[b] . encoder[indices[b, j]] + b_enc[indices[b, j]], already computed
    densely without gradient; the backward touches only the selected latents (sparse matmuls, no
    dense [batch, n_latents] gradient)."""

    @staticmethod
    def forward(ctx, centred, encoder, b_enc, indices, values):
        ctx.save_for_backward(centred, encoder, indices)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        centred, encoder, indices = ctx.saved_tensors
        grad_centred = embedding_bag(indices, encoder, per_sample_weights=grad, mode="sum")
        grad_encoder = scatter_rows(indices, grad, centred, len(encoder))
        grad_b_enc = torch.zeros(len(encoder), dtype=grad.dtype).index_add_(0, indices.flatten(), grad.flatten())
        return grad_centred, grad_encoder, grad_b_enc, None, None


class SparseDecode(torch.autograd.Function):
    """out[b] = sum_j values[b, j] * W_dec[indices[b, j]], with a sparse backward."""

    @staticmethod
    def forward(ctx, indices, values, W_dec):
        ctx.save_for_backward(indices, values, W_dec)
        return embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        indices, values, W_dec = ctx.saved_tensors
        return None, gathered_dot(grad, W_dec, indices), scatter_rows(indices, values, grad, len(W_dec))


class TopKSAE(nn.Module):
    def __init__(self, d: int, cfg: TopKConfig, b_dec: torch.Tensor, generator: torch.Generator):
        super().__init__()
        W_dec = torch.randn(cfg.n_latents, d, generator=generator)
        W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.encoder = nn.Parameter(W_dec.clone())  # W_enc transposed: [n_latents, d], rows gather fast
        self.b_enc = nn.Parameter(torch.zeros(cfg.n_latents))
        self.b_dec = nn.Parameter(b_dec.clone())

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Every latent's pre-activation, without gradient: [batch, n_latents]."""
        with torch.no_grad():
            return (x - self.b_dec) @ self.encoder.T + self.b_enc

    def select(self, x: torch.Tensor, pre: torch.Tensor, k: int, mask: torch.Tensor | None = None):
        """Indices of the k largest pre-activations (among `mask`ed latents if given) and their ReLU
        values, with gradient flowing to the encoder rows, b_enc and b_dec of those latents only."""
        if mask is not None:
            pre = pre.masked_fill(~mask, float("-inf"))
        values, indices = pre.topk(k, dim=-1)
        values = SelectedLatents.apply(x - self.b_dec, self.encoder, self.b_enc, indices, values)
        return indices, values.relu()

    def decode(self, indices: torch.Tensor, values: torch.Tensor, bias: bool = True) -> torch.Tensor:
        out = SparseDecode.apply(indices, values, self.W_dec)
        return out + self.b_dec if bias else out

    @torch.no_grad()
    def project_decoder_gradient(self) -> None:
        """Remove the part of each decoder row's gradient that would change its norm."""
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
            self.W_dec.grad -= parallel * self.W_dec

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)


def train_topk(acts: torch.Tensor, cfg: TopKConfig, log_every: int = 0) -> dict[str, torch.Tensor]:
    """Train a TopK SAE on `acts` [n_tokens, d]; our format (format.py) in raw activation units."""
    if cfg.b_dec_init not in ("median", "mean"):
        raise ConfigError(f"sae.b_dec_init must be 'median' or 'mean', got {cfg.b_dec_init!r}")
    generator = torch.Generator().manual_seed(cfg.seed)
    x_all = acts.float()
    scale = float(x_all.pow(2).sum(dim=1).mean().sqrt() / math.sqrt(x_all.shape[1])) or 1.0
    x_all = x_all / scale
    sample = x_all[torch.randperm(len(x_all), generator=generator)[:8192]]
    b_dec = geometric_median(sample) if cfg.b_dec_init == "median" else sample.mean(dim=0)
    model = TopKSAE(x_all.shape[1], cfg, b_dec, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=6.25e-10, fused=True)
    last_fired = torch.zeros(cfg.n_latents, dtype=torch.long)  # tokens since each latent last fired
    step = 0
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(x_all), generator=generator).split(cfg.batch_size):
            x = x_all[idx]
            pre = model.pre_activations(x)
            indices, values = model.select(x, pre, cfg.k)
            error = x - model.decode(indices, values)
            loss = error.pow(2).sum(dim=1).mean()
            fired = torch.zeros(cfg.n_latents, dtype=torch.bool)
            fired[indices[values > 0]] = True
            last_fired = torch.where(fired, 0, last_fired + len(x))
            dead = last_fired >= cfg.dead_tokens
            if cfg.aux_k and dead.any():
                loss = loss + cfg.aux_coef * aux_loss(model, x, pre, error.detach(), dead, cfg.aux_k)
            optimizer.zero_grad()
            loss.backward()
            model.project_decoder_gradient()
            optimizer.step()
            model.normalise_decoder()
            step += 1
            if log_every and step % log_every == 0:
                print(f"step {step}: mse {float(error.detach().pow(2).sum(1).mean()):.4f}, dead {int(dead.sum())}")
    return export(model, scale, cfg)


def aux_loss(model: TopKSAE, x: torch.Tensor, pre: torch.Tensor, error: torch.Tensor, dead: torch.Tensor,
             aux_k: int) -> torch.Tensor:
    """AuxK: reconstruct the main reconstruction's error from the top aux_k dead latents,
    normalised by the error's own size (so the weight means the same whatever the residual)."""
    indices, values = model.select(x, pre, min(aux_k, int(dead.sum())), mask=dead[None, :])
    predicted = model.decode(indices, values, bias=False)
    return (error - predicted).pow(2).sum(dim=1).mean() / error.pow(2).sum(dim=1).mean().clamp_min(1e-12)


@torch.no_grad()
def export(model: TopKSAE, scale: float, cfg: TopKConfig) -> dict[str, torch.Tensor]:
    """Our format in raw units: x = scale * x_n, so b_dec and b_enc (and every latent) scale by `scale`."""
    return {
        "W_enc": model.encoder.detach().T.contiguous(),
        "b_enc": model.b_enc.detach() * scale,
        "W_dec": model.W_dec.detach().clone(),
        "b_dec": model.b_dec.detach() * scale,
        "threshold": torch.zeros(cfg.n_latents),
        "k": torch.tensor([cfg.k]),
    }


def config_metadata(cfg: TopKConfig) -> dict[str, str]:
    return {"source": "train", "architecture": "topk", "config": json.dumps(asdict(cfg), sort_keys=True)}
