"""PCA: the first principal component of the positive tokens' activations (AxBench), sign toward positives."""

import torch

from interpflow.methods.base import DirectionMethod, top_principal_component


class PCA(DirectionMethod):
    name = "pca"

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        return top_principal_component(pos)
