"""Integrated gradients (AxBench's IG baseline; Sundararajan et al. 2017): a token scores
h_t . mean over alpha of d logit(alpha h) / d h_t at layer L (zero baseline on the scored tokens,
midpoint Riemann sum of `steps` terms) for a linear head trained on the frozen model's last
residual stream averaged over the response tokens (see _attribution.py). Detection only."""

from interpflow.methods._attribution import AttributionMethod


class IG(AttributionMethod):
    name = "ig"

    def alphas(self) -> list[float]:
        steps = int(self.cfg["steps"])
        return [(k + 0.5) / steps for k in range(steps)]
