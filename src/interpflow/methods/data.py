"""What a method sees when it trains (one shard) and when it detects (one shard's evaluation set)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from safetensors import safe_open

from interpflow.artifacts import write_tensors
from interpflow.data.sources.base import SHARED_NEGATIVE
from interpflow.errors import ConfigError


@dataclass
class ModelHandle:
    """The model in the loop, for methods with needs == "model"."""

    model: object
    tokenizer: object
    cfg: dict  # the model config (prompt style, score context, ...)
    layer: int


def token_slices(acts: torch.Tensor, index: pd.DataFrame, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """The token activations of the examples selected by `mask`, and each token's example number."""
    rows = index[mask]
    pieces = [acts[o : o + n] for o, n in zip(rows["offset"], rows["n_tokens"])]
    example = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor(rows["n_tokens"].to_numpy()))
    return torch.cat(pieces).float(), example


@dataclass
class ConceptData:
    """One concept's training set. Negatives are its own negatives plus the shared negatives of its genre."""

    concept_id: int
    concept: str
    genre: str
    positives: pd.DataFrame  # training rows (input, output, ...) that express the concept
    negatives: pd.DataFrame
    pos: torch.Tensor | None = None  # [n_pos_tokens, d] cached activations (needs == "activations")
    neg: torch.Tensor | None = None
    pos_example: torch.Tensor | None = None  # example number of each positive token
    neg_example: torch.Tensor | None = None  # example number of each negative token
    pairs: pd.DataFrame | None = None  # input, concept_output, plain_output (uses_pairs)
    model: ModelHandle | None = None
    sae: dict[str, torch.Tensor] | None = None  # the experiment's SAE (uses_sae), see interpflow.sae
    sae_neuronpedia: str = ""  # the SAE's Neuronpedia source ("gemma-2-2b/20-gemmascope-res-16k"), "" if unknown
    ref: str = ""  # where the concept came from (concepts.parquet `ref`): e.g. its Neuronpedia latent
    seed: int = 0


@dataclass
class TrainingData:
    """Everything a method may train on for one shard. Only what its `needs` asks for is loaded."""

    concepts: pd.DataFrame  # concept_id, concept, genre of the shard
    examples: pd.DataFrame  # the shard's training data (example_id, concept_id, input, output, label, category, genre)
    acts: torch.Tensor | None = None
    index: pd.DataFrame | None = None
    model: ModelHandle | None = None
    pairs: pd.DataFrame | None = None
    sae: dict[str, torch.Tensor] | None = None
    sae_neuronpedia: str = ""
    checkpoint_dir: Path | None = None
    checkpoint_key: str = ""  # what the checkpoints were trained from; a mismatch retrains
    seed: int = 0
    trained: list[int] = field(default_factory=list)  # concepts trained in this job (not resumed)

    @property
    def concept_ids(self) -> list[int]:
        """The concepts to train (the stage has already applied the method's selection)."""
        return [int(c) for c in self.concepts["concept_id"]]

    def _masks(self, frame: pd.DataFrame, concept_id: int, genre: str):
        positive = (frame["concept_id"] == concept_id) & (frame["label"] == 1)
        own = (frame["concept_id"] == concept_id) & (frame["label"] == 0)
        shared = (frame["concept_id"] == SHARED_NEGATIVE) & (frame["genre"] == genre)
        return positive, own | shared

    def concept(self, concept_id: int) -> ConceptData:
        row = self.concepts[self.concepts["concept_id"] == concept_id].iloc[0]
        positive, negative = self._masks(self.examples, concept_id, row["genre"])
        if not positive.any() or not negative.any():
            missing = "positive" if not positive.any() else f"negative (own, or shared of genre {row['genre']!r})"
            raise ConfigError(f"concept {concept_id} has no {missing} training examples; the data source must provide them")
        data = ConceptData(
            concept_id=concept_id, concept=row["concept"], genre=row["genre"],
            positives=self.examples[positive].reset_index(drop=True),
            negatives=self.examples[negative].reset_index(drop=True),
            model=self.model, sae=self.sae, sae_neuronpedia=self.sae_neuronpedia, seed=self.seed,
            ref=str(row["ref"]) if "ref" in row.index and pd.notna(row["ref"]) else "",
        )
        if self.acts is not None:
            pos_mask, neg_mask = self._masks(self.index, concept_id, row["genre"])
            data.pos, data.pos_example = token_slices(self.acts, self.index, pos_mask)
            data.neg, data.neg_example = token_slices(self.acts, self.index, neg_mask)
        if self.pairs is not None:
            data.pairs = self.pairs[self.pairs["concept_id"] == concept_id].reset_index(drop=True)
        return data

    def checkpoint(self, concept_id: int, train: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """`train()`'s result for a concept, read from its checkpoint when one was written from the same inputs."""
        if self.checkpoint_dir is None:
            return train()
        path = Path(self.checkpoint_dir) / f"concept_{concept_id}.safetensors"
        if path.exists():
            try:
                with safe_open(str(path), "pt") as f:
                    if (f.metadata() or {}).get("key") == self.checkpoint_key:
                        return {k: f.get_tensor(k) for k in f.keys()}
            except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is retrained, never trusted
                warnings.warn(f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); "
                              f"discarded, concept {concept_id} is trained again", stacklevel=2)
                path.unlink(missing_ok=True)
        result = train()
        write_tensors(result, path, metadata={"key": self.checkpoint_key})
        self.trained.append(concept_id)
        return result


@dataclass
class EvalData:
    """One shard's evaluation examples, in file order, and what a detector may read of them."""

    examples: pd.DataFrame  # example_id, concept_id, category, input, output (text) and n_tokens when cached
    acts: torch.Tensor | None = None  # [n_tokens, d], examples back to back (needs == "activations")
    model: ModelHandle | None = None
    concepts: pd.DataFrame | None = None  # concept_id, concept of the scoring concepts, in score-column order

    def reduce_tokens(self, token_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Max and mean over each example's tokens: [n_tokens, n_concepts] -> two [n_examples, n_concepts]."""
        lengths = torch.tensor(self.examples["n_tokens"].to_numpy())
        max_scores = torch.segment_reduce(token_scores, "max", lengths=lengths, axis=0)
        mean_scores = torch.segment_reduce(token_scores, "mean", lengths=lengths, axis=0)
        return max_scores, mean_scores


def checkpoint_key(*parts) -> str:
    return json.dumps(parts, sort_keys=True, default=str)
