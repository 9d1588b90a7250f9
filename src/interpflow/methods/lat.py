"""LAT (linear artificial tomography, from representation engineering) as AxBench runs it: the
positive tokens are shuffled and split into disjoint pairs, each pair's difference is scaled to unit
length, and the direction is the first principal component of those differences (centred, as
scikit-learn's PCA does). The component's sign is arbitrary; it is turned toward the positives."""

import torch

from interpflow.methods.base import DirectionMethod, top_principal_component
from interpflow.ranges import SEED


class LAT(DirectionMethod):
    name = "lat"
    settings = {**DirectionMethod.settings, "seed": SEED}

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.cfg.get("seed", 0)))
        shuffled = pos[torch.randperm(len(pos), generator=generator)]
        half = len(shuffled) // 2
        if half < 2:
            raise ValueError(f"LAT needs at least 4 positive tokens to pair; the concept has {len(pos)}")
        differences = shuffled[:half] - shuffled[half:2 * half]
        norms = differences.norm(dim=1, keepdim=True)
        differences = torch.where(norms > 0, differences / norms.clamp_min(1e-12), torch.zeros_like(differences))
        return top_principal_component(differences)
