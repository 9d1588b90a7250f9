"""BoW (AxBench's bag-of-words baseline): logistic regression on word counts of the example's text,
by default its instruction and response together as AxBench counts them (`text: response` counts the
response alone).

Detection only. AxBench fits a CountVectorizer vocabulary per concept; here words are hashed into
a fixed space (HashingVectorizer with the same tokenisation, counts, no normalisation), so every
concept's classifier is a weight vector of the same length and the artifact stacks over concepts:
`weight` [n_concepts, n_features] and `bias` [n_concepts]. An example's score is the classifier's
decision function (log-odds) on its whole text, so its max and mean scores are equal.
"""

from __future__ import annotations

import numpy as np
import torch

from interpflow.errors import ConfigError
from interpflow.methods.base import PerConceptMethod
from interpflow.methods.data import ConceptData, EvalData
from interpflow.ranges import COUNT, RATE, SEED, choice


TEXTS = ("instruction_and_response", "response")
PENALTIES = ("l1", "l2")


def logistic_regression(penalty: str, C: float, max_iter: int, seed: int):
    """scikit-learn's LogisticRegression with an L1 or L2 penalty on every supported version: from 1.8 the
    penalty is given as l1_ratio (and `penalty` is deprecated); before, l1_ratio is ignored unless
    penalty='elasticnet', so it must be given as penalty."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    solver = "liblinear" if penalty == "l1" else "lbfgs"
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        return LogisticRegression(l1_ratio=float(penalty == "l1"), C=C, solver=solver, max_iter=max_iter,
                                  random_state=seed)
    return LogisticRegression(penalty=penalty, C=C, solver=solver, max_iter=max_iter, random_state=seed)


class BoW(PerConceptMethod):
    name = "bow"
    needs = "text"
    detects = True
    steers = False
    uses_factor = False
    settings = {"text": choice(*TEXTS), "n_features": COUNT, "penalty": choice(*PENALTIES), "C": RATE, "max_iter": COUNT,
                "seed": SEED}

    def vectorizer(self):
        # sklearn is imported here, not at the top: the Snakefile loads the registry, and only BoW jobs need it
        from sklearn.feature_extraction.text import HashingVectorizer

        # alternate_sign=False and norm=None give plain word counts, as CountVectorizer does
        return HashingVectorizer(n_features=int(self.cfg["n_features"]), alternate_sign=False, norm=None)

    def texts(self, examples) -> list[str]:
        """What is counted of each example."""
        choice = self.cfg.get("text", "instruction_and_response")
        if choice not in TEXTS:
            raise ConfigError(f"bow: text must be one of {TEXTS}, got {choice!r}")
        if choice == "response":
            return examples["output"].tolist()
        return [f"{instruction}\n{response}" for instruction, response in zip(examples["input"], examples["output"])]

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        texts = self.texts(concept.positives) + self.texts(concept.negatives)
        labels = np.r_[np.ones(len(concept.positives)), np.zeros(len(concept.negatives))]
        if self.cfg["penalty"] not in PENALTIES:
            raise ConfigError(f"bow: penalty must be one of {PENALTIES}, got {self.cfg['penalty']!r}")
        classifier = logistic_regression(self.cfg["penalty"], float(self.cfg["C"]), int(self.cfg["max_iter"]),
                                         int(self.cfg["seed"]))
        classifier.fit(self.vectorizer().transform(texts), labels)
        return {
            "weight": torch.tensor(classifier.coef_[0], dtype=torch.float32),
            "bias": torch.tensor(classifier.intercept_[0], dtype=torch.float32),
        }

    def score_examples(self, tensors: dict[str, torch.Tensor], data: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
        counts = self.vectorizer().transform(self.texts(data.examples))  # sparse [n_examples, n_features]
        weight = tensors["weight"].double().numpy()
        scores = counts @ weight.T + tensors["bias"].double().numpy()
        scores = torch.tensor(np.asarray(scores), dtype=torch.float32)
        return scores, scores.clone()
