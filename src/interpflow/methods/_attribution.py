"""Gradient attributions through a classifier on the frozen model (AxBench's IxG and IG baselines).

Per concept, a head is trained to tell the concept's positives from its negatives on a feature of
the frozen model's last layer; a token's score is the attribution of the head's output to that
token's residual state h_t after block L. By default everything is as AxBench has it:

  head: mlp        d -> d/2 (ReLU, dropout 0.3 while training) -> 2 classes, cross-entropy
  read: last_token the model's last hidden state (after the final norm) at the last token
  target: probability  the head's probability of "positive" (softmax)
  aggregate: abs   a token's score is sum over d of |(h_t - baseline) * gradient|
  IG baseline: mean_embedding  every position's state starts from the mean input embedding of
                   1,000 random tokens; left Riemann sum over alpha = k / steps

Each can be switched to the variant this project used before (and documents in docs/benchmarks/concept.md):
`head: linear` (logistic regression), `read: mean_response` (the last block's output before the
final norm, averaged over the scored tokens: every token reaches the head along its own residual
path), `target: logit` (no saturation on confident examples), `aggregate: signed`, and IG
`baseline: zero` (only the scored tokens are scaled, from 0; midpoint Riemann sum). On a small
model the defaults give weaker token attributions (AxBench's rationale is its 2B and 9B models).

AxBench applies its cross-entropy to the softmax's output (a second softmax); here the head is
trained with cross-entropy on its logits. The model is frozen and in eval mode, so each
example's feature is computed once (no gradient) and the head trains on features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import pandas as pd
import torch
from torch.nn.functional import binary_cross_entropy_with_logits, dropout

from interpflow.errors import ConfigError
from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData, EvalData, ModelHandle, TrainingData
from interpflow.models.architectures import decoder_blocks
from interpflow.models.formatting import ScoredTokens, scored_tokens
from interpflow.ranges import COUNT, NON_NEGATIVE, RATE, SEED, choice, integer

CHOICES = {"head": ("mlp", "linear"), "read": ("last_token", "mean_response"),
           "target": ("probability", "logit"), "aggregate": ("abs", "signed"),
           "baseline": ("mean_embedding", "zero")}
AXBENCH = {"head": "mlp", "read": "last_token", "target": "probability", "aggregate": "abs",
           "baseline": "mean_embedding"}
HEAD_DROPOUT = 0.3
BASELINE_TOKENS = 1000


@dataclass(frozen=True)
class Setup:
    head: str
    read: str
    target: str
    aggregate: str
    baseline: str

    @classmethod
    def from_cfg(cls, cfg: dict, method: str) -> "Setup":
        values = {key: cfg.get(key, default) for key, default in AXBENCH.items()}
        for key, value in values.items():
            if value not in CHOICES[key]:
                raise ConfigError(f"{method}: {key} must be one of {CHOICES[key]}, got {value!r}")
        return cls(**values)


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


def scored_mask(examples: list[ScoredTokens], rows: list[int], mask: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: the positions of each row that are scored (the response; never position 0)."""
    starts = torch.tensor([examples[i].score_start for i in rows])
    return (torch.arange(mask.shape[1])[None, :] >= starts[:, None]) & mask.bool()


def read_feature(model, ids: torch.Tensor, mask: torch.Tensor, scored: torch.Tensor, read: str) -> torch.Tensor:
    """The head's input for each row: [B, d] (see the module docstring for `read`)."""
    captured = []
    hook = decoder_blocks(model)[-1].register_forward_hook(
        lambda _m, _i, output: captured.append(output[0] if isinstance(output, tuple) else output))
    try:
        out = model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        hook.remove()
    if read == "last_token":  # right padding: the last real token is at mask.sum - 1
        last = mask.sum(dim=1) - 1
        return out.last_hidden_state[torch.arange(len(ids), device=ids.device), last].float()
    hidden = captured[0].float()
    weights = scored.to(hidden) / scored.sum(dim=1, keepdim=True).to(hidden)
    return torch.einsum("btd,bt->bd", hidden, weights)


def head_logit(head: dict[str, torch.Tensor], x: torch.Tensor, train: bool = False) -> torch.Tensor:
    """The head's log-odds of "positive" for features x [B, d]: [B]. An MLP head's two class logits give
    logit_1 - logit_0, so sigmoid of it is the softmax's probability of class 1."""
    if "weight" in head:
        return x @ head["weight"] + head["bias"]
    hidden = torch.relu(dropout(x, HEAD_DROPOUT, train) @ head["w1"].T + head["b1"])
    logits = dropout(hidden, HEAD_DROPOUT, train) @ head["w2"].T + head["b2"]
    return logits[:, 1] - logits[:, 0]


def new_head(kind: str, d: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A linear head from zero, or an MLP head initialised as torch's nn.Linear layers are."""
    if kind == "linear":
        return {"weight": torch.zeros(d, requires_grad=True), "bias": torch.zeros((), requires_grad=True)}

    def uniform(shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        return ((torch.rand(shape, generator=generator) * 2 - 1) * bound).requires_grad_(True)

    h = d // 2
    return {"w1": uniform((h, d), d), "b1": uniform((h,), d), "w2": uniform((2, h), h), "b2": uniform((2,), h)}


def train_head(x: torch.Tensor, y: torch.Tensor, cfg: dict, kind: str) -> dict[str, torch.Tensor]:
    """The head (AdamW, linear decay to 0, cross-entropy) on features x [n, d] and labels y [n]."""
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    head = new_head(kind, x.shape[1], generator)
    optimizer = torch.optim.AdamW(list(head.values()), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    per_epoch = -(-len(x) // cfg["batch_size"])
    total = max(1, cfg["epochs"] * per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    for _ in range(cfg["epochs"]):
        for idx in torch.randperm(len(x), generator=generator).split(cfg["batch_size"]):
            with torch.random.fork_rng():  # dropout draws from its own seeded stream
                torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
                loss = binary_cross_entropy_with_logits(head_logit(head, x[idx], train=True), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return {key: value.detach() for key, value in head.items()}


def mean_embedding(model, seed: int = 0) -> torch.Tensor:
    """AxBench's IG baseline: the mean input embedding of 1,000 random tokens ([d])."""
    embeddings = model.get_input_embeddings().weight
    tokens = torch.randint(len(embeddings), (BASELINE_TOKENS,), generator=torch.Generator().manual_seed(seed))
    return embeddings[tokens.to(embeddings.device)].float().mean(0).detach()


def attributions(model, layer: int, ids: torch.Tensor, mask: torch.Tensor, scored: torch.Tensor,
                 heads: list[dict[str, torch.Tensor]], setup: Setup, alphas: list[float],
                 baseline: torch.Tensor | None) -> torch.Tensor:
    """Attribution of every head's target to every token's state after block `layer`: [n_heads, B, T].

    Block `layer`'s output is replaced by a leaf tensor, baseline + alpha (h - baseline), and the
    rest of the model runs on it; one backward pass per head and alpha. `baseline` None: 0, on the
    scored positions only (the rest keep h); a tensor [d]: that state at every position.
    """
    state: dict = {}

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if "clean" not in state:
            state["clean"] = hidden.detach().float()
            state["start"] = torch.zeros_like(state["clean"]) if baseline is None else \
                baseline.to(hidden.device).expand_as(state["clean"])
        interpolated = state["start"] + state["alpha"] * (state["clean"] - state["start"])
        if baseline is None:
            interpolated = torch.where(scored[..., None], interpolated, state["clean"])
        state["leaf"] = interpolated.to(hidden.dtype).requires_grad_(True)
        return (state["leaf"], *output[1:]) if isinstance(output, tuple) else state["leaf"]

    heads = [{k: v.to(model.device).float() for k, v in head.items()} for head in heads]
    scored = scored.to(model.device)
    gradients = torch.zeros(len(heads), *ids.shape, model.config.hidden_size, device=model.device)
    handle = decoder_blocks(model)[layer].register_forward_hook(hook)
    try:
        with torch.enable_grad():
            for alpha in alphas:
                state["alpha"] = alpha
                features = read_feature(model, ids, mask, scored, setup.read)
                for number, head in enumerate(heads):
                    target = head_logit(head, features)
                    target = torch.sigmoid(target) if setup.target == "probability" else target
                    last = number == len(heads) - 1
                    (grad,) = torch.autograd.grad(target.sum(), state["leaf"], retain_graph=not last)
                    gradients[number] += grad.float()
    finally:
        handle.remove()
    products = (state["clean"] - state["start"]) * gradients / len(alphas)
    return products.abs().sum(-1) if setup.aggregate == "abs" else products.sum(-1)


class AttributionMethod(PerConceptMethod):
    """Detection by gradient attribution to layer-L token states through a trained head.

    Artifact per concept: a linear head's `head_weight` [d] and `head_bias` [], or an MLP head's
    `head_w1` [d/2, d], `head_b1`, `head_w2` [2, d/2], `head_b2`. Subclasses set `alphas` and
    `baseline`.
    """

    needs = "model"
    detects = True
    steers = False
    uses_factor = False
    settings = {**{key: choice(*CHOICES[key]) for key in ("head", "read", "target", "aggregate")},
                "epochs": COUNT, "lr": RATE, "weight_decay": NON_NEGATIVE, "batch_size": COUNT, "forward_batch_size": COUNT,
                "max_length": integer(8), "seed": SEED, "max_concepts": integer(1, nullable=True)}

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.setup = Setup.from_cfg(cfg, self.name)

    def alphas(self) -> list[float]:
        raise NotImplementedError

    def baseline(self, model) -> torch.Tensor | None:
        """The IG starting state ([d], every position) or None (zero, scored positions only)."""
        return None

    def selected_concepts(self, concept_ids: list[int]) -> list[int]:
        """The first max_concepts of the shard (null: all): detection costs one backward pass per concept."""
        limit = self.cfg.get("max_concepts")
        return concept_ids if limit is None else concept_ids[: int(limit)]

    # --- training ---------------------------------------------------------------------------
    def train(self, data: TrainingData) -> dict[str, torch.Tensor]:
        self._feature_memo: dict[tuple[str, str], torch.Tensor] = {}  # shared negatives are computed once
        return super().train(data)

    @torch.no_grad()
    def _features(self, handle: ModelHandle, frame: pd.DataFrame) -> torch.Tensor:
        memo = getattr(self, "_feature_memo", {})
        keys = list(zip(frame["input"], frame["output"]))
        missing = list(dict.fromkeys(k for k in keys if k not in memo))
        if missing:
            todo = tokenize(handle, pd.DataFrame(missing, columns=["input", "output"]), self.cfg["max_length"])
            model, computed = handle.model, torch.empty(len(todo), handle.model.config.hidden_size)
            for rows, ids, mask in batches(todo, self.cfg["forward_batch_size"], handle.tokenizer.pad_token_id):
                scored = scored_mask(todo, rows, mask).to(model.device)
                computed[rows] = read_feature(model, ids.to(model.device), mask.to(model.device), scored,
                                              self.setup.read).cpu()
            memo.update(zip(missing, computed))
        return torch.stack([memo[k] for k in keys])

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        x = torch.cat([self._features(concept.model, frame) for frame in (concept.positives, concept.negatives)])
        y = torch.cat([torch.ones(len(concept.positives)), torch.zeros(len(concept.negatives))])
        head = train_head(x, y, self.cfg, self.setup.head)
        return {f"head_{key}": value for key, value in head.items()}

    # --- detection --------------------------------------------------------------------------
    @staticmethod
    def heads(tensors: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        parts = {key.removeprefix("head_"): value for key, value in tensors.items() if key.startswith("head_")}
        n = len(next(iter(parts.values())))
        return [{key: value[i] for key, value in parts.items()} for i in range(n)]

    def score_examples(self, tensors: dict[str, torch.Tensor], data: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
        """Every head scores every example: n_concepts backward passes (x steps) per example."""
        handle = data.model
        model = handle.model
        examples = tokenize(handle, data.examples, self.cfg["max_length"])
        heads = self.heads(tensors)
        baseline = self.baseline(model)
        max_scores = torch.empty(len(examples), len(heads))
        mean_scores = torch.empty(len(examples), len(heads))
        for rows, ids, mask in batches(examples, self.cfg["forward_batch_size"], handle.tokenizer.pad_token_id):
            scored = scored_mask(examples, rows, mask)
            attr = attributions(model, handle.layer, ids.to(model.device), mask.to(model.device), scored,
                                heads, self.setup, self.alphas(), baseline).cpu()
            for r, i in enumerate(rows):
                tokens = attr[:, r, scored[r]]  # [n_heads, n_scored]
                max_scores[i], mean_scores[i] = tokens.max(dim=1).values, tokens.mean(dim=1)
        return max_scores, mean_scores
