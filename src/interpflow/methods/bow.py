"""BoW (AxBench's bag-of-words baseline): logistic regression on word counts of the response text.

Detection only. AxBench fits a CountVectorizer vocabulary per concept; here words are hashed into
a fixed space (HashingVectorizer with the same tokenisation, counts, no normalisation), so every
concept's classifier is a weight vector of the same length and the artifact stacks over concepts:
`weight` [n_concepts, n_features] and `bias` [n_concepts]. An example's score is the classifier's
decision function (log-odds) on its whole response, so its max and mean scores are equal.
"""

from __future__ import annotations

import numpy as np
import torch

from interpflow.errors import ConfigError
from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData, EvalData


class BoW(PerConceptMethod):
    name = "bow"
    needs = "text"
    detects = True
    steers = False
    uses_factor = False

    def vectorizer(self):
        # sklearn is imported here, not at the top: the Snakefile loads the registry, and only BoW jobs need it
        from sklearn.feature_extraction.text import HashingVectorizer

        # alternate_sign=False and norm=None give plain word counts, as CountVectorizer does
        return HashingVectorizer(n_features=int(self.cfg["n_features"]), alternate_sign=False, norm=None)

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        from sklearn.linear_model import LogisticRegression

        texts = concept.positives["output"].tolist() + concept.negatives["output"].tolist()
        labels = np.r_[np.ones(len(concept.positives)), np.zeros(len(concept.negatives))]
        if self.cfg["penalty"] not in ("l1", "l2"):
            raise ConfigError(f"bow: penalty must be l1 or l2, got {self.cfg['penalty']!r}")
        l1 = self.cfg["penalty"] == "l1"
        classifier = LogisticRegression(
            l1_ratio=1.0 if l1 else 0.0, C=float(self.cfg["C"]), solver="liblinear" if l1 else "lbfgs",
            max_iter=int(self.cfg["max_iter"]), random_state=int(self.cfg["seed"]),
        )
        classifier.fit(self.vectorizer().transform(texts), labels)
        return {
            "weight": torch.tensor(classifier.coef_[0], dtype=torch.float32),
            "bias": torch.tensor(classifier.intercept_[0], dtype=torch.float32),
        }

    def score_examples(self, tensors: dict[str, torch.Tensor], data: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
        counts = self.vectorizer().transform(data.examples["output"].tolist())  # sparse [n_examples, n_features]
        weight = tensors["weight"].double().numpy()
        scores = counts @ weight.T + tensors["bias"].double().numpy()
        scores = torch.tensor(np.asarray(scores), dtype=torch.float32)
        return scores, scores.clone()
