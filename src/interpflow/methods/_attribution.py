"""Gradient attributions through a classifier on the frozen model (AxBench's IxG and IG baselines).

Per concept, a linear head reads the model's last residual stream (after the last block, before
the final norm), averaged over the example's scored tokens, and is trained with BCE to tell the
concept's positives from its negatives. AxBench's head reads the last token after the final norm
instead; two changes, both for the attributions' sake: the mean lets every token reach the head
along its own residual path (a small model's last token mostly encodes its next-token guess), and
a head behind the final norm is blind to the scale of a token's state along that path, so
h . grad cancels there and IxG/IG lose the direct signal. The model is frozen and in eval mode,
so each example's features are computed once (no gradient) and the head trains on them: the same
head as a loop through the model, for one forward pass per example.

A token's score for a concept is the attribution of the head's logit to that token's residual
state h_t after block L, summed over the hidden dimension (signed, the textbook definitions):
  IxG: h_t . d logit / d h_t
  IG:  h_t . mean over alpha of d logit(alpha h) / d h_t, a midpoint Riemann sum from the zero
       baseline; only the scored tokens are scaled, the prefix (BOS / prompt) keeps its states.
(AxBench differentiates the sigmoid probability and sums |h * grad|; the logit avoids the
sigmoid's saturation on confident examples, which flattens every token's score.)
Tokens and the scored span are those of the activation cache (formatting.scored_tokens).
"""

from __future__ import annotations

from typing import Iterator

import pandas as pd
import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData, EvalData, ModelHandle, TrainingData
from interpflow.models.architectures import decoder_blocks
from interpflow.models.formatting import ScoredTokens, scored_tokens


def tokenize(handle: ModelHandle, frame: pd.DataFrame, max_length: int) -> list[ScoredTokens]:
    pairs = zip(frame["input"], frame["output"])
    return [scored_tokens(handle.tokenizer, handle.cfg, i, o, max_length) for i, o in pairs]


def batches(examples: list[ScoredTokens], batch_size: int,
            pad_id: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(example numbers, ids, mask), right-padded (positions stay 0..n-1), batched by length."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(examples[i].input_ids) for i in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            n = len(examples[i].input_ids)
            ids[r, :n] = torch.tensor(examples[i].input_ids)
            mask[r, :n] = 1
        yield rows, ids, mask


def pooled_state(model, ids: torch.Tensor, mask: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """Residual stream after the last block (before the final norm), averaged over each row's scored tokens: [B, d]."""
    captured = []
    handle = decoder_blocks(model)[-1].register_forward_hook(
        lambda _m, _i, output: captured.append(output[0] if isinstance(output, tuple) else output))
    try:
        model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        handle.remove()
    hidden = captured[0].float()
    weights = scored.to(hidden) / scored.sum(dim=1, keepdim=True).to(hidden)
    return torch.einsum("btd,bt->bd", hidden, weights)


def scored_mask(examples: list[ScoredTokens], rows: list[int], mask: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: the positions of each row that are scored (the response; never position 0)."""
    starts = torch.tensor([examples[i].score_start for i in rows])
    return (torch.arange(mask.shape[1])[None, :] >= starts[:, None]) & mask.bool()


@torch.no_grad()
def features(handle: ModelHandle, examples: list[ScoredTokens], batch_size: int) -> torch.Tensor:
    model = handle.model
    out = torch.empty(len(examples), model.config.hidden_size)
    for rows, ids, mask in batches(examples, batch_size, handle.tokenizer.pad_token_id):
        scored = scored_mask(examples, rows, mask)
        out[rows] = pooled_state(model, ids.to(model.device), mask.to(model.device), scored.to(model.device)).cpu()
    return out


def train_head(x: torch.Tensor, y: torch.Tensor, cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic-regression head (AdamW, linear decay to 0, BCE), from zero weights."""
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.AdamW([weight, bias], lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    per_epoch = -(-len(x) // cfg["batch_size"])
    total = max(1, cfg["epochs"] * per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    for _ in range(cfg["epochs"]):
        for idx in torch.randperm(len(x), generator=generator).split(cfg["batch_size"]):
            loss = binary_cross_entropy_with_logits(x[idx] @ weight + bias, y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return weight.detach(), bias.detach()


def attributions(model, layer: int, ids: torch.Tensor, mask: torch.Tensor, scored: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor, alphas: list[float]) -> torch.Tensor:
    """Attribution of every head's logit to every token's state after block `layer`: [n_heads, B, T].

    Block `layer`'s output is replaced by a leaf tensor (alpha * h on the `scored` positions, h
    elsewhere) and the rest of the model runs on it; one backward pass per head and alpha.
    """
    state: dict = {}

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if "clean" not in state:
            state["clean"] = hidden.detach()
        scale = torch.where(scored, state["alpha"], 1.0)[..., None].to(hidden.dtype)
        state["leaf"] = (state["clean"] * scale).requires_grad_(True)
        return (state["leaf"], *output[1:]) if isinstance(output, tuple) else state["leaf"]

    weight, bias = weight.to(model.device).float(), bias.to(model.device).float()
    scored = scored.to(model.device)
    total = torch.zeros(len(weight), *ids.shape, device=model.device)
    handle = decoder_blocks(model)[layer].register_forward_hook(hook)
    try:
        with torch.enable_grad():
            for alpha in alphas:
                state["alpha"] = alpha
                logits = pooled_state(model, ids, mask, scored) @ weight.T + bias  # [B, n_heads]
                for head in range(len(weight)):
                    last = head == len(weight) - 1
                    (grad,) = torch.autograd.grad(logits[:, head].sum(), state["leaf"], retain_graph=not last)
                    total[head] += (grad.float() * state["clean"].float()).sum(dim=-1)
    finally:
        handle.remove()
    return total / len(alphas)


class AttributionMethod(PerConceptMethod):
    """Detection by gradient attribution to layer-L token states through a trained head.

    Artifact per concept: `head_weight` [d_model] and `head_bias` []. Subclasses set `alphas`.
    """

    needs = "model"
    detects = True
    steers = False
    uses_factor = False

    def alphas(self) -> list[float]:
        raise NotImplementedError

    def selected_concepts(self, concept_ids: list[int]) -> list[int]:
        """The first max_concepts of the shard (null: all): detection costs one backward pass per concept."""
        limit = self.cfg.get("max_concepts")
        return concept_ids if limit is None else concept_ids[: int(limit)]

    # --- training ---------------------------------------------------------------------------
    def train(self, data: TrainingData) -> dict[str, torch.Tensor]:
        self._feature_memo: dict[tuple[str, str], torch.Tensor] = {}  # shared negatives are computed once
        return super().train(data)

    def _features(self, handle: ModelHandle, frame: pd.DataFrame) -> torch.Tensor:
        memo = getattr(self, "_feature_memo", {})
        keys = list(zip(frame["input"], frame["output"]))
        missing = list(dict.fromkeys(k for k in keys if k not in memo))
        if missing:
            todo = pd.DataFrame(missing, columns=["input", "output"])
            computed = features(handle, tokenize(handle, todo, self.cfg["max_length"]), self.cfg["forward_batch_size"])
            memo.update(zip(missing, computed))
        return torch.stack([memo[k] for k in keys])

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        x = torch.cat([self._features(concept.model, frame) for frame in (concept.positives, concept.negatives)])
        y = torch.cat([torch.ones(len(concept.positives)), torch.zeros(len(concept.negatives))])
        weight, bias = train_head(x, y, self.cfg)
        return {"head_weight": weight, "head_bias": bias}

    # --- detection --------------------------------------------------------------------------
    def score_examples(self, tensors: dict[str, torch.Tensor], data: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
        """Every head scores every example: n_concepts backward passes (x steps) per example."""
        handle = data.model
        model = handle.model
        examples = tokenize(handle, data.examples, self.cfg["max_length"])
        n_heads = len(tensors["head_weight"])
        max_scores = torch.empty(len(examples), n_heads)
        mean_scores = torch.empty(len(examples), n_heads)
        for rows, ids, mask in batches(examples, self.cfg["forward_batch_size"], handle.tokenizer.pad_token_id):
            scored = scored_mask(examples, rows, mask)
            attr = attributions(model, handle.layer, ids.to(model.device), mask.to(model.device), scored,
                                tensors["head_weight"], tensors["head_bias"], self.alphas()).cpu()
            for r, i in enumerate(rows):
                tokens = attr[:, r, scored[r]]  # [n_heads, n_scored]
                max_scores[i], mean_scores[i] = tokens.max(dim=1).values, tokens.mean(dim=1)
        return max_scores, mean_scores
