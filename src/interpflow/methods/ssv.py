"""SSV, the supervised steering vector (AxBench, Wu et al. 2025; after Subramani et al. 2022).

A free vector v, every coordinate starting at `init_value` (AxBench: 0.01), is added to the residual
stream after block L at every position and trained with the language-modelling loss on the
concept's positive responses given their instructions. As in AxBench, the same v also detects:
a token's latent is ReLU(h . v), and steering adds factor x a_c x v, a_c being the concept's largest
latent on its evaluation examples. v is not normalised, so its length enters both a_c and the
added vector (strength grows with |v|^2): that is AxBench's definition, kept as is.
"""

from __future__ import annotations

import torch

from interpflow.methods._through_model import (FIT_SETTINGS, PrefixCache, concept_generator, fit, hidden_size,
                                               response_activations, subsample, tokenize)
from interpflow.methods.base import VectorMethod
from interpflow.methods.data import ConceptData, EvalData
from interpflow.models.hooks import add_to_residual
from interpflow.models.training import response_nll
from interpflow.ranges import integer, number


class SSV(VectorMethod):
    name = "ssv"
    needs = "model"
    unit_directions = False
    settings = {**VectorMethod.settings, **FIT_SETTINGS,
                "init_value": number(), "score_max_length": integer(8)}

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        handle = concept.model
        model, layer = handle.model, handle.layer
        generator = concept_generator(concept)
        positives = subsample(concept.positives, int(self.cfg["max_examples"]), generator)
        pairs = tokenize(handle, positives["input"], positives["output"], self.cfg["max_response_tokens"])
        cache = PrefixCache(handle, pairs, self.cfg["batch_size"])
        start = torch.full((hidden_size(model),), float(self.cfg["init_value"]), device=model.device)
        vector = start.requires_grad_(True)

        def loss(rows: list[int], _progress: float) -> torch.Tensor:
            batch = cache.batch(rows)
            with cache.run_from(batch), add_to_residual(model, layer, vector.expand(len(rows), -1)):
                return response_nll(model, batch)

        fit([vector], len(pairs), self.cfg, generator, loss)
        # latent ReLU(h . v): read = v (the default), threshold 0
        return {"directions": vector.detach().float().cpu(), "threshold": torch.zeros(())}

    def score_examples(self, tensors, data: EvalData):
        # The detect job has the model, not the cache (SSV trains through the model): recompute the
        # scored tokens' activations in the model's scoring context, as the cache holds them.
        acts, examples = response_activations(data.model, data.examples, int(self.cfg["score_max_length"]))
        return super().score_examples(tensors, EvalData(examples=examples, acts=acts, model=data.model))
