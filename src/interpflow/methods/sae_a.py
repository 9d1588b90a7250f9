"""SAE-A (AxBench): the SAE latent with the best ROC AUC on the concept's training examples, an
example scored by the latent's max over its tokens, searched over all latents. Detection and
steering as in SAE (methods/sae.py): the latent itself, steered along its raw decoder row. Its
`latent_choice` is always best_training_auc: AxBench's SAE-A is that supervised choice by definition."""

from __future__ import annotations

import torch

from interpflow.methods.data import ConceptData
from interpflow.methods.sae import CHOICES, SAE, concept_sae
from interpflow.sae.latents import latent_artifact


class SAEA(SAE):
    name = "sae_a"
    pooling = "max"
    settings = {key: value for key, value in SAE.settings.items() if key != "labels"}  # no labels: it searches every latent

    def train_concept(self, concept: ConceptData) -> dict[str, torch.Tensor]:
        sae = concept_sae(concept, self.name)
        aucs = self.training_aucs(sae, concept)
        index = int(aucs.argmax())
        return {**latent_artifact(sae, index), "train_auc": aucs[index].reshape(1),
                "latent_choice": torch.tensor([CHOICES.index("best_training_auc")])}
