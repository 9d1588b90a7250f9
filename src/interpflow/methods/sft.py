"""SFT: full supervised fine-tuning per concept, AxBench's upper-bound steering baseline (Wu et al.
2025, "AxBench: Steering LLMs? Even Simple Baselines Outperform Sparse Autoencoders").

Every parameter of a copy of the model is trained on the concept's positive (instruction,
response) pairs with the LM loss on the response tokens (AdamW, linear decay, gradient clipping
at 1.0 as in AxBench). The artifact holds the fine-tuned parameters themselves, keyed by
parameter name, in the model's dtype. Parameters shared by two modules (tied input and output
embeddings, as in SmolLM2 and Gemma) are stored once, under the name `named_parameters` gives
them; loading into that one parameter updates both modules, so ties survive.

Steering swaps a concept's weights into the model for one generation batch (batch_key =
concept_id: a batch never mixes concepts) and puts the base weights back on exit. A model per
concept is costly, so like AxBench (20 of 500 concepts) the config may restrict the concepts.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from interpflow.methods._finetune import FINETUNE_SETTINGS, finetune
from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData
from interpflow.ranges import integer, number


def check_keys(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """The artifact must hold exactly the model's parameters (as named_parameters names them)."""
    names = {name for name, _ in model.named_parameters()}
    missing, unexpected = sorted(names - set(weights)), sorted(set(weights) - names)
    if missing or unexpected:
        raise ValueError(f"SFT weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


@contextmanager
def swapped_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> Iterator[None]:
    """Copy `weights` (name -> tensor) into the model's parameters; restore the originals on exit."""
    check_keys(model, weights)
    params = dict(model.named_parameters())
    originals = {name: p.detach().clone() for name, p in params.items()}
    try:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(weights[name])
        yield
    finally:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(originals[name])


class SFT(PerConceptMethod):
    name = "sft"
    needs = "model"
    detects = False
    steers = True
    uses_factor = False
    batch_key = "concept_id"
    settings = {"max_concepts": integer(1, nullable=True), "grad_clip": number(0, nullable=True),
                **FINETUNE_SETTINGS}

    def selected_concepts(self, concept_ids: list[int]) -> list[int]:
        """The first max_concepts of the given concepts (the stage passes one shard's), or all when null."""
        limit = self.cfg.get("max_concepts")
        return list(concept_ids) if limit is None else list(concept_ids)[: int(limit)]

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        # A private copy: the shared model is never modified (deepcopy keeps tied parameters tied).
        tuned = copy.deepcopy(concept.model.model)
        tuned.requires_grad_(True)
        finetune(tuned, list(tuned.parameters()), concept, self.cfg)
        return {name: p.detach().cpu().clone() for name, p in tuned.named_parameters()}

    def steering(self, tensors, model, layer, rows):
        concept_row = rows["concept_row"].unique()
        if len(concept_row) != 1:
            raise ValueError(f"an SFT steering batch must hold one concept, got rows {list(concept_row)}")
        row = int(concept_row[0])
        return swapped_weights(model, {name: t[row] for name, t in tensors.items()})
