"""Linear probe as AxBench trains it: per-token BCE of sigmoid(h . w) with no bias, every token of a
positive example labelled 1; w stays on the unit sphere (before each step it is rescaled to length 1
and the gradient's radial part removed); AdamW with a linearly decaying learning rate."""

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from interpflow.methods.base import DirectionMethod
from interpflow.ranges import COUNT, NON_NEGATIVE, RATE, SEED


class Probe(DirectionMethod):
    name = "probe"
    settings = {**DirectionMethod.settings, "lr": RATE, "weight_decay": NON_NEGATIVE, "epochs": COUNT, "batch_size": COUNT,
                "seed": SEED}

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(self.cfg.get("seed", 0)))
        x = torch.cat([pos, neg])
        y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
        weight = torch.randn(x.shape[1], generator=generator)
        weight = (weight / weight.norm()).requires_grad_(True)
        optimizer = torch.optim.AdamW([weight], lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])
        batch, epochs = self.cfg["batch_size"], self.cfg["epochs"]
        total_steps = epochs * -(-len(x) // batch)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total_steps)
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=generator).split(batch):
                loss = binary_cross_entropy_with_logits(x[idx] @ weight, y[idx])
                optimizer.zero_grad()
                loss.backward()
                with torch.no_grad():
                    weight /= weight.norm().clamp_min(1e-12)
                    weight.grad -= (weight.grad @ weight) * weight
                optimizer.step()
                schedule.step()
        return weight.detach()
