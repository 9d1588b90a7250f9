"""Input x gradient (AxBench's IxG baseline): a token scores h_t . d logit / d h_t at layer L for a
linear head trained on the frozen model's last residual stream averaged over the response tokens
(see _attribution.py). Detection only."""

from interpflow.methods._attribution import AttributionMethod


class IxG(AttributionMethod):
    name = "ixg"

    def alphas(self) -> list[float]:
        return [1.0]  # the gradient at the input itself
