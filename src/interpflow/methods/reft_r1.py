"""ReFT-r1, rank-1 representation finetuning (AxBench, Wu et al. 2025).

One unit direction w is both the detector and the steering vector. Token latent
z = ReLU((h - mu) . w) (h: residual stream after block L; mu: its mean over the training responses'
tokens, fixed before training; `centre: false` drops it). Training runs the frozen model with the
intervention h <- h + mean(top-k z) * w at every position, the top k taken over every token but the
first (AxBench's "all" positions; `topk_span: response` takes the response's only), on the concept's
positive responses and as many of its negatives: the LM loss on both teaches w to fire on the
concept (so the intervention helps the positives) and to stay silent elsewhere (so it does not
disturb the negatives). An L1 penalty on the non-top-k latents, ramped linearly from 0 to
`l1_coeff` over training, keeps the latent sparse; `negative_latent_coeff` penalises the negatives'
top-k latent directly (with few steps the LM loss alone learns a direction that helps every
response, negatives included). Each step moves w along the unit sphere (the gradient's radial
part removed) and puts it back on it; it starts, as AxBench's, with every coordinate equal
(`init: random` draws it instead). Detection reads z; steering adds factor x a_c x w.

Centring departs from the paper's ReLU(h . w). Some models' residual streams carry a huge component
shared by every token (Gemma 3 270M at layer 9: one dimension is ~6,250 of a ~6,500 norm). There,
h . w has the same sign on every token for a random w: either every token fires, or none does and
the ReLU passes no gradient. Trained uncentred, all 8 demo concepts ended with z = 0 on every token
(ROC AUC 0.5). Centring keeps about half the tokens firing at initialisation. The artifact stores it
as read_bias = -mu . w, so detection computes the same z.
"""

from __future__ import annotations

import pandas as pd
import torch

from interpflow.errors import ConfigError
from interpflow.methods._through_model import (FIT_SETTINGS, PrefixCache, concept_generator, fit, hidden_size,
                                               random_vector, response_activations, subsample, tokenize)
from interpflow.methods.base import VectorMethod
from interpflow.methods.data import ConceptData, EvalData
from interpflow.models.hooks import edit_residual
from interpflow.models.training import LMBatch, response_nll
from interpflow.ranges import COUNT, NON_NEGATIVE, choice, flag, integer


def top_k_split(z: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the mean of the k largest latents on the masked tokens ([B]), and the mean over the
    masked tokens of the latents outside that top k ([B], the L1 term; z >= 0 so L1 = sum)."""
    k = min(k, z.shape[1])
    top, _ = z.masked_fill(~mask, -1.0).topk(k, dim=-1)  # -1 marks tokens off the mask (z itself is >= 0)
    valid = top >= 0
    top_sum = torch.where(valid, top, torch.zeros_like(top)).sum(-1)
    n_masked = mask.sum(-1).clamp(min=1)
    top_mean = top_sum / valid.sum(-1).clamp(min=1)
    rest = ((z * mask).sum(-1) - top_sum) / n_masked
    return top_mean, rest


def response_mean(cache: PrefixCache) -> torch.Tensor:
    """mu: the mean state after block L over every training example's response tokens ([d], float32)."""
    return torch.cat([state[-len(pair[1]) :] for state, pair in zip(cache.states, cache.pairs)]).float().mean(0)


INITS = ("axbench", "random")
SPANS = ("all", "response")


def initial_direction(init: str, d: int, generator: torch.Generator, device) -> torch.Tensor:
    """The unit w training starts from: AxBench fills every coordinate with 0.01 (on the unit sphere: all
    coordinates 1/sqrt(d)); `random`, a torch Linear row's uniform draw, normalised."""
    if init not in INITS:
        raise ConfigError(f"reft_r1 init {init!r} is not one of {INITS}")
    w = torch.ones(d, device=device) if init == "axbench" else random_vector(d, generator, device).detach()
    return (w / w.norm()).requires_grad_(True)


def top_k_span(batch: LMBatch, span: str) -> torch.Tensor:
    """[B, T] bool: the tokens whose latents the top k is taken over. `all` (AxBench's "all" positions):
    every token of the prompt and response but the first; `response`: the response tokens."""
    if span not in SPANS:
        raise ConfigError(f"reft_r1 topk_span {span!r} is not one of {SPANS}")
    if span == "response":
        return batch.response.bool()
    return batch.mask.bool() & (batch.positions > 0)


class ReFTR1(VectorMethod):
    name = "reft_r1"
    settings = {**VectorMethod.settings, **FIT_SETTINGS, "score_max_length": integer(8), "topk": COUNT,
                "topk_span": choice(*SPANS), "init": choice(*INITS), "centre": flag(), "l1_coeff": NON_NEGATIVE,
                "negatives_per_positive": NON_NEGATIVE, "negative_latent_coeff": NON_NEGATIVE}
    needs = "model"

    def training_rows(self, concept: ConceptData, generator: torch.Generator) -> pd.DataFrame:
        """Up to `max_examples` positives and `negatives_per_positive` x as many negatives, drawn at random."""
        positives = subsample(concept.positives, int(self.cfg["max_examples"]), generator)
        n_neg = int(round(self.cfg["negatives_per_positive"] * len(positives)))
        return pd.concat([positives, subsample(concept.negatives, n_neg, generator)], ignore_index=True)

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        handle = concept.model
        model, layer, k = handle.model, handle.layer, int(self.cfg["topk"])
        generator = concept_generator(concept)
        frame = self.training_rows(concept, generator)
        pairs = tokenize(handle, frame["input"], frame["output"], self.cfg["max_response_tokens"])
        cache = PrefixCache(handle, pairs, self.cfg["batch_size"])
        negative = torch.tensor((frame["label"] == 0).to_numpy(), device=model.device)
        centre = response_mean(cache).to(model.device) * float(bool(self.cfg["centre"]))
        w = initial_direction(self.cfg["init"], hidden_size(model), generator, model.device)

        def loss(rows: list[int], progress: float) -> torch.Tensor:
            batch = cache.batch(rows)
            span = top_k_span(batch, self.cfg["topk_span"]).to(model.device)
            penalties: list[torch.Tensor] = []

            def intervene(hidden: torch.Tensor) -> torch.Tensor:
                z = torch.relu((hidden.float() - centre) @ w)  # [B, T]
                magnitude, rest = top_k_split(z, span, k)
                on_negatives = (magnitude * negative[rows]).sum() / len(rows)
                penalties.append(progress * self.cfg["l1_coeff"] * rest.mean()
                                 + self.cfg["negative_latent_coeff"] * on_negatives)
                return hidden + magnitude[:, None, None] * w

            with cache.run_from(batch), edit_residual(model, layer, intervene):
                nll = response_nll(model, batch)
            return nll + penalties[0]

        def tangent_gradient() -> None:  # the radial part would only change |w|, which is reset anyway
            with torch.no_grad():
                w.grad -= (w.grad @ w) * w

        def unit_norm() -> None:
            with torch.no_grad():
                w.div_(w.norm().clamp_min(1e-12))

        fit([w], len(pairs), self.cfg, generator, loss, before_step=tangent_gradient, after_step=unit_norm)
        # z = ReLU(h . w - mu . w): read = w, read_bias = -mu . w, threshold 0.
        w = w.detach().float()
        return {"directions": w.cpu(), "read_bias": -(centre @ w).cpu(), "threshold": torch.zeros(())}

    def score_examples(self, tensors, data: EvalData):
        # Detect (and so set a_c) in the context it trained in, the model's prompt + response,
        # whatever the model's score_context: the centre and the latent are only defined there.
        acts, examples = response_activations(data.model, data.examples, int(self.cfg["score_max_length"]), context="prompt")
        return super().score_examples(tensors, EvalData(examples=examples, acts=acts, model=data.model))
