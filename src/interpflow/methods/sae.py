"""SAE (AxBench): steer and detect with one latent of a sparse autoencoder.

In AxBench the SAE baseline uses, for each concept, the Gemma Scope latent whose (Neuronpedia)
explanation the concept was written from: its concepts *are* SAE-latent labels. Here the latent is,
in this order:
1. `ref`: the latent the concept's `ref` names (AxBench metadata's Neuronpedia URL, a Neuronpedia
   export's model/layer/index), when it names this SAE (its Neuronpedia source, which sae_lens's
   registry gives for a pretrained SAE, equals the ref's);
2. `labels`: with a labels table configured (cfg `labels`), the latent whose explanation is the
   concept (case-insensitive), otherwise the explanation closest in MiniLM sentence embedding;
3. `best_training_auc`: the latent with the best training ROC AUC, scoring each example by the
   latent's mean over its tokens (SAE-A, in sae_a.py, uses the max, as AxBench's detection does).
The artifact's `latent_choice` says which (0, 1, 2 in this order), and the job's log names it.

Artifact per concept: the latent as a VectorMethod (read = W_enc[:, i], read_bias = b_enc[i] -
b_dec . W_enc[:, i], threshold[i]: exactly the SAE's latent), directions = the raw decoder row
W_dec[i], and latent_index. The raw row makes both interventions SAE interventions: addition adds
strength * W_dec[i] (raise latent i by strength, decode), clamping adds (strength - z) * W_dec[i]
(set latent i to strength, decode, keep the SAE's error). strength = factor * a_c with a_c the
latent's max on the concept's evaluation examples, in the latent's own units.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import torch

from interpflow.data import user_files
from interpflow.embeddings import embedder, minilm_path
from interpflow.errors import ConfigError
from interpflow.methods.base import VectorMethod
from interpflow.methods.data import ConceptData
from interpflow.sae.format import check_sae
from interpflow.sae.latents import latent_artifact, latent_aucs
from interpflow.ranges import text

INDEX_COLUMNS = ("latent", "index", "feature", "latent_index")
CHOICES = ("ref", "labels", "best_training_auc")
# "https://www.neuronpedia.org/gemma-2-2b/10-gemmascope-res-16k/14874" or "neuronpedia:gemma-2-2b/10-gemmascope-res-16k/14874"
NEURONPEDIA_REF = re.compile(r"^(?:https?://(?:www\.)?neuronpedia\.org/|neuronpedia:)([^/]+/[^/]+)/(\d+)/?$")


def neuronpedia_latent(ref: str) -> tuple[str, int] | None:
    """(Neuronpedia source "model/sae-set", latent index) named by a concept's ref, or None."""
    match = NEURONPEDIA_REF.match(ref.strip())
    return (match.group(1), int(match.group(2))) if match else None
TEXT_COLUMNS = ("description", "explanation", "label", "concept")


class SAE(VectorMethod):
    name = "sae"
    needs = "activations"
    uses_sae = True
    # how the training AUC scores an example from its tokens' latents
    pooling = "mean"
    # `sae`: which of the experiment's `saes` it reads (null: one method per SAE)
    settings = {**VectorMethod.settings, "sae": text(nullable=True), "labels": text(nullable=True)}

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self._labels: pd.DataFrame | None = None
        self._label_vectors: torch.Tensor | None = None

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        sae = concept_sae(concept, self.name)
        n_latents = sae["W_enc"].shape[1]
        named = neuronpedia_latent(concept.ref)
        if named is not None and concept.sae_neuronpedia and named[0] == concept.sae_neuronpedia:
            choice, index = "ref", named[1]
        elif self.cfg.get("labels"):
            choice, index = "labels", self.labelled_latent(concept.concept)
        else:
            choice, index = "best_training_auc", None
        if index is not None and not 0 <= index < n_latents:
            raise ConfigError(f"concept {concept.concept_id}'s {choice} names latent {index}, but the SAE has {n_latents} latents")
        if index is None:
            aucs = self.training_aucs(sae, concept)
            index = int(aucs.argmax())
            auc = aucs[index]
        else:
            auc = self.training_aucs(sae, concept, restrict=index)
        print(f"sae: concept {concept.concept_id} uses latent {index} ({choice}; training ROC AUC {float(auc):.3f})")
        return {**latent_artifact(sae, index), "train_auc": torch.tensor([float(auc)]),
                "latent_choice": torch.tensor([CHOICES.index(choice)])}

    def training_aucs(self, sae: dict, concept: ConceptData, restrict: int | None = None) -> torch.Tensor:
        """Training ROC AUC of every latent ([n_latents]), or of latent `restrict` alone (a scalar)."""
        if restrict is not None:
            sae = {**sae, "W_enc": sae["W_enc"][:, restrict:restrict + 1], "b_enc": sae["b_enc"][restrict:restrict + 1],
                   "threshold": sae["threshold"][restrict:restrict + 1]}
        aucs = latent_aucs(sae, concept.pos, concept.pos_example, concept.neg, concept.neg_example, self.pooling)
        return aucs[0] if restrict is not None else aucs

    # --- labelled latents -----------------------------------------------------------------------
    def labelled_latent(self, concept: str) -> int:
        """The latent whose explanation is the concept (case-insensitive), else the closest one in
        MiniLM embedding (ties: the first row)."""
        labels = self.labels()
        wanted = concept.strip().lower()
        exact = labels.index[labels["text"].str.strip().str.lower() == wanted]
        if len(exact):
            return int(labels.loc[exact[0], "latent"])
        vectors = self.label_vectors()
        query = embed([concept])[0]
        return int(labels["latent"].iloc[int((vectors @ query).argmax())])

    def labels(self) -> pd.DataFrame:
        if self._labels is None:
            self._labels = read_labels(self.cfg["labels"])
        return self._labels

    def label_vectors(self) -> torch.Tensor:
        if self._label_vectors is None:
            self._label_vectors = embed(self.labels()["text"].tolist())
        return self._label_vectors


def concept_sae(concept: ConceptData, method: str) -> dict[str, torch.Tensor]:
    sae = concept.sae
    if sae is None:
        raise ConfigError(f"method {method} needs the experiment's SAE for this model and layer (config group `sae`)")
    check_sae(sae)
    return sae


def read_labels(path: str | Path, key: str = "methods.<sae method>.labels") -> pd.DataFrame:
    """A latent-label table (parquet, csv or json: a list of records as Neuronpedia exports them,
    or {latent: text}) as columns latent (int) and text."""
    user_files.existing_file(path, key)
    if Path(path).suffix == ".json":
        data = user_files.read_json(path, key, "a list of {latent, text} records or an object {latent: text}")
        if isinstance(data, dict):
            data = [{"latent": latent, "text": text} for latent, text in data.items()]
        if not isinstance(data, list) or not all(isinstance(record, dict) for record in data):
            raise user_files.problem(path, key, "is neither a list of records nor an object {latent: text}",
                                     "give a Neuronpedia export or {\"<latent>\": \"<explanation>\", ...}")
        frame = pd.DataFrame(data)
    elif Path(path).suffix in (".parquet", ".csv"):
        frame = user_files.read_table(path, key)
    else:
        raise user_files.problem(path, key, f"has the suffix {Path(path).suffix or '(none)'!r}",
                                 "give a .parquet, .csv or .json labels table")
    index_col = next((c for c in ("latent", *INDEX_COLUMNS) if c in frame.columns), None)
    text_col = next((c for c in ("text", *TEXT_COLUMNS) if c in frame.columns), None)
    if index_col is None or text_col is None:
        raise user_files.problem(path, key, f"has the columns {list(frame.columns)}", f"give a latent column (one "
                                 f"of {INDEX_COLUMNS}) and a text column (one of {TEXT_COLUMNS})")
    latents = pd.to_numeric(frame[index_col], errors="coerce")
    bad = (latents.isna() | (latents % 1 != 0)).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise user_files.problem(path, key, f"row {row} has the latent {frame[index_col].iloc[row]!r}",
                                 "give every latent as an integer index")
    out = pd.DataFrame({"latent": latents.astype(int), "text": frame[text_col].fillna("").astype(str)})
    return out.reset_index(drop=True)


def embed(texts: list[str]) -> torch.Tensor:
    """Unit MiniLM sentence embeddings (the offline judge's model): [n, 384]."""
    return torch.from_numpy(embedder(minilm_path()).encode(texts, unit=True)).float()
