"""LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), as AxBench's
steering baseline: rank-r adapters trained per concept with the LM loss on the concept's responses.

Following AxBench: adapters on the attention output projection (`o_proj`) of four layers at
1/4, 1/2, 3/4 and 1 x L (Gemma-2-2B, L = 20: layers 5, 10, 15, 20), rank 4, alpha 32, rank-stabilised
scaling alpha / sqrt(r), dropout 0.05. Training uses `peft` on the shared (frozen) model; the
adapter weights are then copied out and the adapters unloaded, so the model object is clean
again. Steering applies each batch row's own adapters with forward hooks on the target linear
layers (out += scaling * B (A x)), so one generation batch may mix concepts.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Iterator

import torch
from torch import nn

from interpflow.methods._finetune import FINETUNE_SETTINGS, concept_rows, concept_seed, finetune, seeded
from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData
from interpflow.models.architectures import decoder_blocks
from interpflow.ranges import COUNT, FRACTION, RATE, flag, list_of, number, text


def adapted_layers(fractions: list[float], layer: int) -> list[int]:
    """The blocks that get adapters: each fraction of the steering layer, rounded down."""
    return sorted({int(f * layer) for f in fractions})


def target_paths(model: nn.Module, layers: list[int], modules: list[str]) -> list[str]:
    """Full module paths of the nn.Linear layers named in `modules` inside the given blocks."""
    names = {id(m): name for name, m in model.named_modules()}
    blocks = decoder_blocks(model)
    paths = []
    for layer in layers:
        for name, module in blocks[layer].named_modules():
            if name.rsplit(".", 1)[-1] in modules and isinstance(module, nn.Linear):
                paths.append(f"{names[id(blocks[layer])]}.{name}")
    if not paths:
        raise ValueError(f"no nn.Linear named {modules} in blocks {layers}")
    return paths


def lora_config(cfg: dict, paths: list[str]):
    from peft import LoraConfig

    # Full paths as targets: peft matches a target by suffix, so each names exactly one module.
    return LoraConfig(r=int(cfg["rank"]), lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                      use_rslora=cfg["rslora"], target_modules=paths, bias="none")


def adapter_tensors(peft_model, paths: list[str]) -> dict[str, torch.Tensor]:
    """lora_A.<path> [r, in], lora_B.<path> [out, r], scaling.<path> (scalar) of the default adapter."""
    out = {}
    for path in paths:
        layer = peft_model.base_model.model.get_submodule(path)
        out[f"lora_A.{path}"] = layer.lora_A["default"].weight.detach().float().cpu().clone()
        out[f"lora_B.{path}"] = layer.lora_B["default"].weight.detach().float().cpu().clone()
        out[f"scaling.{path}"] = torch.tensor(float(layer.scaling["default"]))
    return out


def artifact_paths(tensors: dict[str, torch.Tensor]) -> list[str]:
    return sorted(key.split(".", 1)[1] for key in tensors if key.startswith("lora_A."))


@contextmanager
def lora_hooks(model: nn.Module, adapters: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> Iterator[None]:
    """out += scaling[i] * (x @ A[i]^T) @ B[i]^T for batch row i, on each module path of `adapters`.

    adapters: path -> (A [B, r, in], B [B, out, r], scaling [B]).
    """

    def make_hook(A: torch.Tensor, B: torch.Tensor, scaling: torch.Tensor):
        def hook(_module, inputs, output):
            x = inputs[0]
            if x.shape[0] != A.shape[0]:
                raise ValueError(f"LoRA steering got a batch of {x.shape[0]} rows for a plan of {A.shape[0]}")
            low = torch.einsum("bti,bri->btr", x.float(), A)
            update = torch.einsum("btr,bor->bto", low, B) * scaling[:, None, None]
            return output + update.to(output.dtype)

        return hook

    with ExitStack() as stack:
        for path, (A, B, scaling) in adapters.items():
            handle = model.get_submodule(path).register_forward_hook(make_hook(A, B, scaling))
            stack.callback(handle.remove)
        yield


class LoRA(PerConceptMethod):
    name = "lora"
    needs = "model"
    detects = False
    steers = True
    uses_factor = False
    settings = {"rank": COUNT, "alpha": RATE, "rslora": flag(), "dropout": number(0, below=1),
                "target_modules": list_of(text()), "layer_fractions": list_of(FRACTION),
                **FINETUNE_SETTINGS}

    def targets(self, model: nn.Module, layer: int) -> list[str]:
        return target_paths(model, adapted_layers(self.cfg["layer_fractions"], layer), self.cfg["target_modules"])

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        from peft import get_peft_model

        model = concept.model.model
        paths = self.targets(model, concept.model.layer)
        with seeded(concept_seed(concept), model.device):  # peft initialises A, and dropout, globally
            peft_model = get_peft_model(model, lora_config(self.cfg, paths))
            try:
                for name, module in peft_model.named_modules():
                    if name.endswith("lora_dropout.default"):
                        module.train()  # the frozen model stays in eval mode; only the adapter's dropout runs
                trainable = [p for p in peft_model.parameters() if p.requires_grad]
                finetune(model, trainable, concept, self.cfg)
                return adapter_tensors(peft_model, paths)
            finally:
                peft_model.unload()  # puts the original nn.Linear objects back; their weights were never touched

    def steering(self, tensors, model, layer, rows):
        idx = concept_rows(rows, "cpu")
        device = model.device
        adapters = {
            path: (tensors[f"lora_A.{path}"].float()[idx].to(device), tensors[f"lora_B.{path}"].float()[idx].to(device),
                   tensors[f"scaling.{path}"].float()[idx].to(device))
            for path in artifact_paths(tensors)
        }
        return lora_hooks(model, adapters)
