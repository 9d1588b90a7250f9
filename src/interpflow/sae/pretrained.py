"""Pretrained SAEs through sae_lens (e.g. Gemma Scope), converted into our format (format.py).

sae_lens's conventions, and how each maps onto ours:
- input: sae_in = x - b_dec when cfg.apply_b_dec_to_input, else x. Without it, b_dec @ W_enc is
  added to b_enc so that our (x - b_dec) @ W_enc + b_enc gives the same pre-activation.
- normalize_activations: "none" needs nothing; "expected_average_only_in" is folded into the
  weights by from_pretrained when the release publishes the factor (and sae_lens's own encode
  ignores it otherwise, so we match it); "layer_norm" and "constant_norm_rescale" rescale each
  token, which no fixed read vector can express: refused.
- JumpReLU: z = relu(pre) * (pre > threshold), i.e. our gate with threshold max(threshold, 0).
- standard (ReLU): threshold 0. TopK: threshold 0 and `k` (see format.py); with
  rescale_acts_by_decoder_norm the decoder norms are folded into the encoder first.
"""

from __future__ import annotations

import os

import torch

from interpflow.data import user_files
from interpflow.errors import ConfigError

SUPPORTED = ("jumprelu", "standard", "topk")


def layer_sae_id(sae_id: str, layer: int) -> str:
    """The SAE id for one layer: `sae_id` with {layer} filled ("layer_{layer}/width_16k/canonical"), so one
    config serves every layer of an experiment; an id without {layer} is used as it is."""
    return sae_id.replace("{layer}", str(layer))


def check_local(path: str, key: str = "saes.<name>.path") -> None:
    """The files of an SAE folder saved by sae_lens: cfg.json (a JSON object) and sae_weights.safetensors (whole)."""
    if not os.path.isdir(path):
        raise user_files.problem(path, key, "is not a folder", "point `path` at a folder saved by sae_lens (SAE.save_model)")
    settings = user_files.read_json(os.path.join(path, "cfg.json"), key, "sae_lens's SAE settings (a JSON object)")
    if not isinstance(settings, dict):
        raise user_files.problem(os.path.join(path, "cfg.json"), key, f"holds {user_files.json_kind(settings)}",
                                 "save the SAE again with sae_lens (SAE.save_model)")
    user_files.check_tensor_file(os.path.join(path, "sae_weights.safetensors"), key)


def load_local(path: str, device: str = "cpu", key: str = "saes.<name>.path") -> dict:
    """An SAE folder saved by sae_lens (`sae.save_model(path)`: cfg.json + sae_weights.safetensors), read
    offline with sae_lens's own loader; our format on the CPU."""
    from sae_lens import SAE  # heavy import, only when used

    check_local(path, key)
    try:
        sae = SAE.load_from_disk(path, device=device)
    except (KeyError, TypeError, ValueError) as error:
        raise user_files.problem(path, key, f"sae_lens cannot load it ({type(error).__name__}: {error})",
                                 "save the SAE again with sae_lens (SAE.save_model)") from None
    tensors, metadata = from_sae_lens(sae)
    return {"tensors": tensors, "metadata": {"source": "pretrained", "path": os.path.abspath(path),
                                             "neuronpedia": "", **metadata}}


def load_pretrained(release: str, sae_id: str, device: str = "cpu") -> dict:
    """Load `sae_id` of `release` from the hub (or its cache) with sae_lens; our format on the CPU.

    Returns {"tensors": {...}, "metadata": {...}}.
    """
    from sae_lens import SAE  # heavy import, only when used

    try:
        sae = SAE.from_pretrained(release, sae_id, device=device)
    except (OSError, ValueError) as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "")
        hint = (f"HF_HUB_OFFLINE={offline} is set: unset it (with network access) to download the SAE once, "
                "or choose the trained SAE (sae=trained_topk)") if offline not in ("", "0") else \
            "check the release and sae_id (sae_lens's pretrained_saes.yaml lists them) and network access to the hub"
        raise ConfigError(f"could not load pretrained SAE {release!r} / {sae_id!r}: {error}. {hint}") from error
    tensors, metadata = from_sae_lens(sae)
    return {"tensors": tensors, "metadata": {"source": "pretrained", "release": release, "sae_id": sae_id,
                                             "neuronpedia": neuronpedia_id(release, sae_id), **metadata}}


def neuronpedia_id(release: str, sae_id: str) -> str:
    """The SAE's Neuronpedia source ("gemma-2-2b/20-gemmascope-res-16k"), from sae_lens's own registry of
    pretrained SAEs (it ships with the package); "" where the registry has none."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    lookup = get_pretrained_saes_directory().get(release)
    return str((lookup.neuronpedia_id or {}).get(sae_id) or "") if lookup is not None else ""


@torch.no_grad()
def from_sae_lens(sae) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Our tensors and metadata for an sae_lens SAE instance (JumpReLU, standard or TopK)."""
    cfg = sae.cfg
    arch = cfg.architecture()
    if arch not in SUPPORTED:
        raise ConfigError(f"SAE architecture {arch!r} is not supported (supported: {', '.join(SUPPORTED)}): "
                          "its latents are not one linear read followed by a threshold")
    if getattr(cfg, "d_out", cfg.d_in) != cfg.d_in or cfg.reshape_activations != "none":
        raise ConfigError("only residual-stream SAEs (d_out == d_in, no hook_z reshaping) are supported")
    if cfg.normalize_activations not in ("none", "expected_average_only_in"):
        raise ConfigError(f"SAE input normalisation {cfg.normalize_activations!r} rescales each token and cannot "
                          "be written as a fixed read vector; use an SAE without it")
    W_enc, b_enc = sae.W_enc.float().clone(), sae.b_enc.float().clone()
    W_dec, b_dec = sae.W_dec.float().clone(), sae.b_dec.float().clone()
    if getattr(cfg, "rescale_acts_by_decoder_norm", False):
        norms = W_dec.norm(dim=1)
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
    if not cfg.apply_b_dec_to_input:
        b_enc = b_enc + b_dec @ W_enc
    threshold = sae.threshold.float().clamp_min(0) if arch == "jumprelu" else torch.zeros(cfg.d_sae)
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "threshold": threshold.clone()}
    if arch == "topk":
        tensors["k"] = torch.tensor([cfg.k])
    meta = cfg.metadata
    metadata = {"architecture": arch, "d_in": cfg.d_in, "d_sae": cfg.d_sae,
                "normalize_activations": cfg.normalize_activations,
                "model_name": meta.get("model_name"), "hook_name": meta.get("hook_name")}
    return {k: v.cpu().contiguous() for k, v in tensors.items()}, {k: str(v) for k, v in metadata.items()}
