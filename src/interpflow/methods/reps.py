"""RePS, reference-free preference steering (Wu et al. 2025, "Improved Representation Steering for
Language Models"), with the steering-vector parameterisation.

Data: pairs (instruction x, concept response y_c, the model's own plain response y_p). A vector v
is trained with a bidirectional, length-normalised (SimPO-style) preference objective:

- steering, h <- h + alpha v at every position (alpha drawn per pair from `train_factors`), must
  prefer y_c:   D+ = b+ / |y_c| log p(y_c | x) - 1 / |y_p| log p(y_p | x),
- suppression, the null intervention h <- h - ReLU(h . v) / |v|^2 v (the positive component
  along v removed), must prefer y_p:   D- = b- / |y_p| log p(y_p | x) - 1 / |y_c| log p(y_c | x),

loss = mean of -log sigmoid(D - margin) over both. The scales come from the unsteered model (no
reference term in the margin, hence "reference-free"): b+ = max(scaler (log p(y_p) - log p(y_c)), 1)
up-weights y_c where the model finds it unlikely, b- likewise for y_p. Steering adds factor x v
(the learned magnitude is the scale); it does not detect.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.nn.functional import logsigmoid

from interpflow.methods._through_model import (FIT_SETTINGS, PrefixCache, concept_generator, fit, hidden_size,
                                               random_vector, subsample, tokenize)
from interpflow.methods.base import VectorMethod
from interpflow.methods.data import ConceptData
from interpflow.models.hooks import add_to_residual, edit_residual
from interpflow.models.training import response_logprobs
from interpflow.ranges import NON_NEGATIVE, RATE, list_of, number


def null_out(v: torch.Tensor):
    """The suppression intervention: remove the positive part of each token's component along v."""

    def edit(hidden: torch.Tensor) -> torch.Tensor:
        coefficient = torch.relu(hidden.float() @ v) / v.pow(2).sum().clamp_min(1e-12)
        return hidden - coefficient[..., None] * v

    return edit


def preference_margin(lp_win: torch.Tensor, lp_lose: torch.Tensor, n_win: torch.Tensor, n_lose: torch.Tensor,
                      scale: torch.Tensor) -> torch.Tensor:
    """scale x length-normalised log p(winner) - length-normalised log p(loser), per pair."""
    return scale * lp_win / n_win - lp_lose / n_lose


def sequence_logprobs(cache: PrefixCache, rows: list[int], intervention=None, argument=None):
    """Summed response log-probabilities of the cached sequences `rows`, under intervention(model, layer,
    argument) when given, and their response lengths."""
    batch = cache.batch(rows)
    model, layer = cache.handle.model, cache.handle.layer
    with cache.run_from(batch), (intervention(model, layer, argument) if intervention else nullcontext()):
        logprobs = response_logprobs(model, batch).sum(-1)
    return logprobs, batch.response.sum(-1).to(logprobs)


class RePS(VectorMethod):
    name = "reps"
    needs = "model"
    detects = False
    uses_pairs = True
    unit_directions = False
    settings = {**VectorMethod.settings, **FIT_SETTINGS,
                "train_factors": list_of(number(above=0)), "scaler": NON_NEGATIVE, "margin": NON_NEGATIVE, "clip_norm": RATE}

    def reference_scales(self, cache: PrefixCache, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """b+ and b- of every pair, from the unsteered model (cache rows: the n concept responses, then the n plain)."""
        step = int(self.cfg["batch_size"])
        with torch.no_grad():
            sums = torch.cat([sequence_logprobs(cache, list(range(s, min(s + step, 2 * n))))[0]
                              for s in range(0, 2 * n, step)])
        lp_c, lp_p = sums[:n], sums[n:]
        scaler = self.cfg["scaler"]
        return (scaler * (lp_p - lp_c)).clamp(min=1.0), (scaler * (lp_c - lp_p)).clamp(min=1.0)

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        handle = concept.model
        model = handle.model
        generator = concept_generator(concept)
        pairs = subsample(concept.pairs, int(self.cfg["max_examples"]), generator)
        n, max_tokens = len(pairs), self.cfg["max_response_tokens"]
        tokens = (tokenize(handle, pairs["input"], pairs["concept_output"], max_tokens)
                  + tokenize(handle, pairs["input"], pairs["plain_output"], max_tokens))
        cache = PrefixCache(handle, tokens, self.cfg["batch_size"])
        beta_plus, beta_minus = self.reference_scales(cache, n)
        v = random_vector(hidden_size(model), generator, model.device)
        train_factors = torch.tensor(self.cfg["train_factors"], dtype=torch.float32)
        margin = self.cfg["margin"]

        def loss(rows: list[int], _progress: float) -> torch.Tensor:
            both = rows + [n + r for r in rows]  # the concept responses, then the plain ones
            b = len(rows)
            alpha = train_factors[torch.randint(len(train_factors), (b,), generator=generator)].to(v.device)
            lp, length = sequence_logprobs(cache, both, add_to_residual, (alpha[:, None] * v).repeat(2, 1))
            steer = preference_margin(lp[:b], lp[b:], length[:b], length[b:], beta_plus[rows])
            lp, length = sequence_logprobs(cache, both, edit_residual, null_out(v))
            suppress = preference_margin(lp[b:], lp[:b], length[b:], length[:b], beta_minus[rows])
            return -(logsigmoid(steer - margin).mean() + logsigmoid(suppress - margin).mean()) / 2

        fit([v], n, self.cfg, generator, loss, clip_norm=self.cfg["clip_norm"])
        return {"directions": v.detach().float().cpu()}
