"""LAT (linear artificial tomography, from representation engineering): the first principal
component of differences between randomly paired activations, sign toward positives."""

import torch

from interpflow.methods.base import DirectionMethod, top_principal_component


class LAT(DirectionMethod):
    name = "lat"

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.cfg.get("seed", 0)))
        tokens = torch.cat([pos, neg])
        partner = torch.randperm(len(tokens), generator=generator)
        differences = tokens - tokens[partner]
        return top_principal_component(differences)
