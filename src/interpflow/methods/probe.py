"""Linear probe: logistic regression on single tokens (per-token BCE), direction unit-normalised."""

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from interpflow.methods.base import DirectionMethod


class Probe(DirectionMethod):
    name = "probe"

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.cfg.get("seed", 0)))
        x = torch.cat([pos, neg])
        y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
        # Standardise with one scale so the learning rate means the same across models and layers.
        scale = x.norm(dim=1).mean().clamp_min(1e-6)
        x = x / scale
        weight = torch.zeros(x.shape[1], requires_grad=True)
        bias = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.AdamW([weight, bias], lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])
        batch = self.cfg["batch_size"]
        for _ in range(self.cfg["epochs"]):
            for idx in torch.randperm(len(x), generator=generator).split(batch):
                loss = binary_cross_entropy_with_logits(x[idx] @ weight + bias, y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return weight.detach()
