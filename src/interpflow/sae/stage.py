"""Stage: the sparse autoencoder of one (model, layer), for the SAE and SAE-A methods.

source "train": trained on the first shards' cached training activations, by sae_lens's own trainer
(lens_training.py: standard/L1, TopK, BatchTopK, JumpReLU) or our TopK trainer (topk.py);
source "pretrained": an sae_lens release (pretrained.py), checked against the activations' width
and layer. Either way the result is written in our format (format.py) with its metadata, and a
summary (tokens, fraction of variance explained, L0, dead latents) is printed and stored.
"""

from __future__ import annotations

import re

import torch
from interpflow.artifacts import open_tensors, write_tensors
from interpflow.errors import ConfigError
from interpflow.sae.format import check_sae, firing_counts, fraction_of_variance_explained
from interpflow.sae.pretrained import layer_sae_id, load_local, load_pretrained
from interpflow.sae.lens_training import KEYS as LENS_KEYS
from interpflow.sae.lens_training import train_with_sae_lens
from interpflow.sae.topk import TopKConfig, config_metadata, train_topk

COMMON_KEYS = {"name", "source", "max_tokens", "summary_tokens", "seed"}
PRETRAINED_KEYS = COMMON_KEYS | {"release", "sae_id", "path", "device"}
TRAIN_KEYS = (COMMON_KEYS | set(TopKConfig.__dataclass_fields__) | LENS_KEYS
              | {"train_shards", "trainer"})  # train_shards: read by the Snakefile
TRAINERS = ("interpflow_topk", "sae_lens")


def read_acts(paths: list[str], max_tokens: int | None, seed: int) -> torch.Tensor:
    """Every file's `acts` stacked ([n_tokens, d], float32); a seeded random subset of max_tokens rows if more."""
    acts = torch.cat([read_acts_file(p) for p in paths]).float()
    if max_tokens and len(acts) > max_tokens:
        keep = torch.randperm(len(acts), generator=torch.Generator().manual_seed(seed))[:max_tokens]
        acts = acts[keep.sort().values]
    return acts


def read_acts_file(path: str) -> torch.Tensor:
    with open_tensors(path) as f:
        return f.get_tensor("acts")


def acts_layer(path: str) -> int | None:
    with open_tensors(path) as f:
        layer = (f.metadata() or {}).get("layer")
    return int(layer) if layer is not None else None


def check_matches(metadata: dict, d: int, acts: list[str], sample: torch.Tensor) -> None:
    """The pretrained SAE must read activations of the cached width, from the cached layer."""
    if sample.shape[1] != d:
        raise ConfigError(f"SAE {metadata.get('release')}/{metadata.get('sae_id')} reads d={d}, but the cached "
                          f"activations have d={sample.shape[1]}: choose an SAE trained on this model")
    hook = re.fullmatch(r"blocks\.(\d+)\.hook_resid_post", metadata.get("hook_name") or "")
    layer = acts_layer(acts[0])
    if hook and layer is not None and int(hook.group(1)) != layer:
        raise ConfigError(f"SAE {metadata.get('sae_id')} reads the residual stream after block {hook.group(1)}, "
                          f"but the activations are after block {layer}: choose the SAE of this layer")


def summary(sae: dict[str, torch.Tensor], acts: torch.Tensor) -> dict[str, float]:
    counts = firing_counts(sae, acts)
    return {
        "tokens": len(acts),
        "fve": round(fraction_of_variance_explained(sae, acts), 4),
        "l0": round(float(counts.sum()) / max(len(acts), 1), 2),
        "dead_latents": int((counts == 0).sum()),
        "n_latents": len(counts),
    }


def load(sae_cfg: dict, layer: int | None) -> dict:
    """A pretrained SAE: a local sae_lens folder (`path`), or `release` + `sae_id` ({layer} filled in)."""
    device = sae_cfg.get("device", "cpu")
    if sae_cfg.get("path"):
        return load_local(str(sae_cfg["path"]), device)
    if not sae_cfg.get("release") or not sae_cfg.get("sae_id"):
        raise ConfigError("a pretrained SAE needs `path` (a folder saved by sae_lens) or `release` and `sae_id`")
    sae_id = layer_sae_id(str(sae_cfg["sae_id"]), layer) if layer is not None else str(sae_cfg["sae_id"])
    return load_pretrained(sae_cfg["release"], sae_id, device)


def sae(sae_cfg: dict, acts: list[str], out: str, layer: int | None = None) -> None:
    """Train or load the SAE for one (model, layer) and write it to `out` (safetensors, our format).
    A pretrained SAE reads the activations only to check that it fits them and to summarise it."""
    source = sae_cfg.get("source")
    allowed = {"train": TRAIN_KEYS, "pretrained": PRETRAINED_KEYS}.get(source)
    if allowed is None:
        raise ConfigError(f"sae.source must be 'train' or 'pretrained', got {source!r}")
    unknown = sorted(set(sae_cfg) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in the sae config (source {source}); allowed: {sorted(allowed)}")
    if not acts:
        raise ConfigError("the sae stage needs the cached training activations of at least one shard")
    seed = int(sae_cfg.get("seed", 0))
    if source == "train":
        trainer = sae_cfg.get("trainer", "interpflow_topk")
        if trainer not in TRAINERS:
            raise ConfigError(f"sae.trainer must be one of {TRAINERS}, got {trainer!r}")
        data = read_acts(acts, sae_cfg.get("max_tokens"), seed)
        if trainer == "sae_lens":
            tensors, metadata = train_with_sae_lens(data, sae_cfg)
        else:
            cfg = TopKConfig.from_dict(sae_cfg)
            tensors, metadata = train_topk(data, cfg), config_metadata(cfg)
    else:
        loaded = load(sae_cfg, layer if layer is not None else acts_layer(acts[0]))
        tensors, metadata = loaded["tensors"], loaded["metadata"]
        data = read_acts(acts, sae_cfg.get("summary_tokens", 8192), seed)
        check_matches(metadata, check_sae(tensors)[0], acts, data)
    check_sae(tensors)
    sample = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:sae_cfg.get("summary_tokens", 8192)]]
    stats = summary(tensors, sample)
    write_tensors(tensors, out, metadata={**metadata, **{f"summary_{k}": v for k, v in stats.items()},
                                           "trained_on_tokens": len(data) if source == "train" else 0})
    print(f"sae ({source}): {len(data)} tokens, d={tensors['W_dec'].shape[1]}, {stats['n_latents']} latents; "
          f"on {stats['tokens']} tokens: FVE {stats['fve']:.3f}, L0 {stats['l0']:.1f}, dead {stats['dead_latents']}")
