"""DiffMean: the difference between the mean activation of positive and negative tokens (AxBench)."""

import torch

from interpflow.methods.base import DirectionMethod


class DiffMean(DirectionMethod):
    name = "diffmean"

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        return pos.mean(dim=0) - neg.mean(dim=0)
