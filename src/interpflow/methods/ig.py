"""Integrated gradients (AxBench's IG baseline; Sundararajan et al. 2017): a token's score is its
state's attribution, (h_t - baseline) x the gradient averaged along the straight path from the
baseline, of the trained head's output (see _attribution.py). Detection only.

AxBench's path (`baseline: mean_embedding`): every position starts at the mean input embedding of
1,000 random tokens, alpha = k / steps for k = 0 .. steps - 1. `baseline: zero`: the scored tokens
start at 0, the rest keep their states, alpha at the midpoints (k + 0.5) / steps."""

from interpflow.methods._attribution import CHOICES, AttributionMethod, mean_embedding
from interpflow.ranges import COUNT, choice


class IG(AttributionMethod):
    name = "ig"
    settings = {**AttributionMethod.settings, "steps": COUNT, "baseline": choice(*CHOICES["baseline"])}

    def alphas(self) -> list[float]:
        steps = int(self.cfg["steps"])
        offset = 0.0 if self.setup.baseline == "mean_embedding" else 0.5
        return [(k + offset) / steps for k in range(steps)]

    def baseline(self, model):
        return mean_embedding(model, int(self.cfg["seed"])) if self.setup.baseline == "mean_embedding" else None
