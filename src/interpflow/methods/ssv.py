"""SSV, the supervised steering vector (AxBench, Wu et al. 2025; after Subramani et al. 2022).

A free vector v is added to the residual stream after block L at every position and trained with
the language-modelling loss on the concept's positive responses given their instructions (the
steering prompt). Steering adds factor x v: the vector's own magnitude is the scale (factor 1 is
the trained vector). It does not detect.
"""

from __future__ import annotations

import torch

from interpflow.methods._through_model import PrefixCache, concept_generator, fit, hidden_size, subsample, tokenize
from interpflow.methods.base import VectorMethod
from interpflow.methods.data import ConceptData
from interpflow.models.hooks import add_to_residual
from interpflow.models.training import response_nll


class SSV(VectorMethod):
    name = "ssv"
    needs = "model"
    detects = False
    unit_directions = False

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        handle = concept.model
        model, layer = handle.model, handle.layer
        generator = concept_generator(concept)
        positives = subsample(concept.positives, int(self.cfg["max_examples"]), generator)
        pairs = tokenize(handle, positives["input"], positives["output"], self.cfg["max_response_tokens"])
        cache = PrefixCache(handle, pairs, self.cfg["batch_size"])
        # Zero start: before the first step the steered model is the model itself.
        vector = torch.zeros(hidden_size(model), device=model.device, requires_grad=True)

        def loss(rows: list[int], _progress: float) -> torch.Tensor:
            batch = cache.batch(rows)
            with cache.run_from(batch), add_to_residual(model, layer, vector.expand(len(rows), -1)):
                return response_nll(model, batch)

        fit([vector], len(pairs), self.cfg, generator, loss)
        return {"directions": vector.detach().float().cpu()}
