"""What every method is: what it reads, what it can do (detect, steer, with a factor), and how.

A method trains on one shard of concepts and returns a dict of tensors (its artifact). The stages
do the rest: `train` saves the tensors, `detect` calls `score_examples`, `steer` calls `steering`
around generation. Per-concept methods get checkpointing for free; vector methods get detection,
addition and clamping for free.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import ClassVar, ContextManager, Iterator

import pandas as pd
import torch

from interpflow.methods.data import ConceptData, EvalData, TrainingData
from interpflow.progress import Progress
from interpflow.ranges import choice, list_of, number

NEEDS = ("activations", "text", "model", "nothing")
INTERVENTIONS = ("addition", "clamping")
NO_THRESHOLD = float("-inf")


class Method:
    """Base class. Subclasses set the class attributes and implement the hooks they support.

    needs: what training (and detection) reads. "activations": the cached residual stream (no
    model in the loop); "text": the examples' text only; "model": the model itself, loaded in the
    job (training through it, or attributions); "nothing": no training (prompting).
    """

    name: ClassVar[str]
    needs: ClassVar[str] = "activations"
    # what detection reads when it differs from training's `needs` (prompt-based detection: the model)
    detect_needs: ClassVar[str | None] = None
    # detection also scores the run's imbalance pool (False where every score is a generation)
    scores_pool: ClassVar[bool] = True
    detects: ClassVar[bool] = True
    steers: ClassVar[bool] = True
    uses_factor: ClassVar[bool] = True
    # training reads paired responses (a concept response and the model's plain one, same instruction)
    uses_pairs: ClassVar[bool] = False
    # steering batches never mix values of this plan column (e.g. one fine-tuned model per concept)
    batch_key: ClassVar[str | None] = None
    # training reads one of the experiment's sparse autoencoders for this model and layer (method key `sae`)
    uses_sae: ClassVar[bool] = False
    # steering edits only the residual stream after block `layer`: generation may then share the
    # blocks below `layer` between rows with the same prompt (see steering_keys for the blocks above)
    edits_after_layer: ClassVar[bool] = False
    # the keys of the method's config (config/method/<name>.yaml) and their allowed values (JSON Schema,
    # see interpflow/ranges.py); `name`, and `factors` where the method steers with a factor, come with
    # every method. A key not listed here stops the run when the config is composed.
    settings: ClassVar[dict[str, dict]] = {}

    def __init__(self, cfg: dict):
        self.cfg = cfg

    @classmethod
    def settings_schema(cls) -> dict:
        common = {"name": {"const": cls.name}}
        if cls.steers and cls.uses_factor:  # its own steering grid instead of steering.factors
            common["factors"] = list_of(number(0))
        return {"type": "object", "properties": {**common, **cls.settings}, "additionalProperties": False}

    @classmethod
    def trains(cls) -> bool:
        return cls.needs != "nothing"

    @classmethod
    def detection_needs(cls) -> str:
        return cls.detect_needs or cls.needs

    # --- training ---------------------------------------------------------------------------
    def selected_concepts(self, concept_ids: list[int]) -> list[int]:
        """The concepts this method trains and is evaluated on (all, unless its config restricts them)."""
        return concept_ids

    def train(self, data: TrainingData) -> dict[str, torch.Tensor]:
        """The artifact for every concept of the shard: tensors whose first dim is the concept row."""
        raise NotImplementedError

    # --- detection --------------------------------------------------------------------------
    def score_examples(self, tensors: dict[str, torch.Tensor], data: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
        """Max and mean token score of every evaluation example for every concept: two [n_examples, n_concepts]."""
        raise NotImplementedError

    # --- steering ---------------------------------------------------------------------------
    def factors(self, default: list[float]) -> list[float]:
        """Steering factors: the experiment's grid unless the method config sets its own."""
        return list(self.cfg.get("factors", default))

    def steering_instruction(self, concept: str, instruction: str, steering_prompt: str = "") -> str:
        """The instruction the model is given; only prompt-based methods change it (`steering_prompt`:
        the concept's prompt-steering instruction written by the generator, "" where there is none)."""
        return instruction

    def steering_keys(self, rows: pd.DataFrame) -> list | None:
        """Per plan row, a value that is equal for rows that `steering` edits the same way (None:
        no two rows are known to be equal); generation shares work between rows with one key."""
        return None

    def steering(self, tensors: dict[str, torch.Tensor], model, layer: int, rows: pd.DataFrame) -> ContextManager:
        """A context inside which `model` generates steered text for `rows` (plan rows, in batch order).

        rows has concept_row (row of the concept in `tensors`), concept_id, factor and strength.
        """
        return _nothing()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class PerConceptMethod(Method):
    """A method trained independently for each concept. Each concept's result is checkpointed, so a
    killed job resumes where it stopped and a finished concept is never trained again."""

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def train(self, data: TrainingData) -> dict[str, torch.Tensor]:
        results = []
        progress = Progress(f"{self.name} training", len(data.concept_ids), "concepts")
        for concept_id in data.concept_ids:
            results.append(data.checkpoint(concept_id, lambda: self.train_concept(data.concept(concept_id))))
            progress.update()
        return {key: torch.stack([r[key] for r in results]) for key in results[0]}


class VectorMethod(PerConceptMethod):
    """A method whose artifact for a concept is a latent read off the residual stream and a vector
    written into it.

    Latent z(h) = pre if pre > threshold else 0, with pre = h . read + read_bias (threshold -inf:
    linear). Tensors: `directions` (the write vector), and optionally `read`, `read_bias`,
    `threshold` (defaults: read = directions, bias 0, linear). Detection scores tokens by z.
    Steering (cfg `intervention`): addition adds strength * direction at every position; clamping
    sets the latent to strength: h + (strength - z(h)) * direction.
    """

    # directions are unit vectors and strength = factor * a_c (the concept's max eval latent);
    # False: the trained vector's own magnitude is the scale, strength = factor
    unit_directions: ClassVar[bool] = True
    edits_after_layer = True
    settings = {"intervention": choice(*INTERVENTIONS)}

    def latent_parts(self, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        read = tensors.get("read", tensors["directions"])
        bias = tensors.get("read_bias", torch.zeros(len(read)))
        threshold = tensors.get("threshold", torch.full((len(read),), NO_THRESHOLD))
        return read.float(), bias.float(), threshold.float()

    def score_tokens(self, tensors: dict[str, torch.Tensor], acts: torch.Tensor) -> torch.Tensor:
        """z for every token and concept: [n_tokens, n_concepts]."""
        read, bias, threshold = self.latent_parts(tensors)
        return latent(acts.float() @ read.T + bias, threshold)

    def score_examples(self, tensors, data: EvalData):
        return data.reduce_tokens(self.score_tokens(tensors, data.acts))

    def steering_keys(self, rows):
        return list(zip(rows["concept_row"], rows["strength"]))

    def steering(self, tensors, model, layer, rows):
        from interpflow.models.hooks import add_to_residual, clamp_residual

        rows_idx = torch.tensor(rows["concept_row"].to_numpy())
        strength = torch.tensor(rows["strength"].to_numpy(), dtype=torch.float32)
        directions = tensors["directions"].float()[rows_idx]
        intervention = self.cfg.get("intervention", "addition")
        if intervention == "addition":
            return add_to_residual(model, layer, directions * strength[:, None])
        read, bias, threshold = (t[rows_idx] for t in self.latent_parts(tensors))
        return clamp_residual(model, layer, directions, strength, read, bias, threshold)

    # Subclasses implement either train_concept directly or `fit` (unit direction from tokens).
    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def latent(pre: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """JumpReLU-style gate: pre where pre > threshold, else 0 (threshold -inf keeps pre as is)."""
    return torch.where(pre > threshold, pre, torch.zeros_like(pre))


class DirectionMethod(VectorMethod):
    """A vector method fit on the cached activations of the concept's positive and negative tokens;
    the direction is unit-normalised and points toward the positives."""

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        """pos [n_pos_tokens, d], neg [n_neg_tokens, d], pos_example [n_pos_tokens] (example index)."""
        raise NotImplementedError

    def train_direction(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        direction = self.fit(pos.float(), neg.float(), pos_example)
        return orient(direction / direction.norm().clamp_min(1e-12), pos, neg)

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        return {"directions": self.train_direction(concept.pos, concept.neg, concept.pos_example)}


def orient(direction: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Point `direction` toward the positives: their mean projection must exceed the negatives'."""
    if (pos.float() @ direction).mean() < (neg.float() @ direction).mean():
        return -direction
    return direction


def top_principal_component(x: torch.Tensor) -> torch.Tensor:
    """First principal component of the rows of x (centred), via SVD."""
    centred = x - x.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return vh[0]

