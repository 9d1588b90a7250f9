"""What every method is: a config, what it reads, and what it can do (detect, steer, with a factor)."""

from __future__ import annotations

from typing import ClassVar

import torch


class Method:
    """Base class. Subclasses set the class attributes and implement the hooks they support.

    needs: "activations" (reads the cached activations; no model in the loop) or "nothing"
    (no training at all, e.g. prompting).
    """

    name: ClassVar[str]
    needs: ClassVar[str] = "activations"
    detects: ClassVar[bool] = True
    steers: ClassVar[bool] = True
    uses_factor: ClassVar[bool] = True

    def __init__(self, cfg: dict):
        self.cfg = cfg

    @classmethod
    def trains(cls) -> bool:
        return cls.needs != "nothing"


class DirectionMethod(Method):
    """A method whose artifact for a concept is one unit direction w in the residual stream.

    Token score = h . w; steering adds strength * w. `fit` sees only scored tokens (the
    excluded prefix has already been removed by the activation cache).
    """

    def fit(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        """pos [n_pos_tokens, d], neg [n_neg_tokens, d], pos_example [n_pos_tokens] (example index).

        Returns a direction [d]; it is unit-normalised and sign-fixed by `train_direction`.
        """
        raise NotImplementedError

    def train_direction(self, pos: torch.Tensor, neg: torch.Tensor, pos_example: torch.Tensor) -> torch.Tensor:
        direction = self.fit(pos.float(), neg.float(), pos_example)
        direction = direction / direction.norm().clamp_min(1e-12)
        # Point toward the positives: their mean projection must exceed the negatives'.
        if (pos.float() @ direction).mean() < (neg.float() @ direction).mean():
            direction = -direction
        return direction


def top_principal_component(x: torch.Tensor) -> torch.Tensor:
    """First principal component of the rows of x (centred), via SVD."""
    centred = x - x.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return vh[0]
