"""Input x gradient (AxBench's IxG baseline): a token's score is its state h_t times the gradient of
the trained head's output with respect to it (see _attribution.py). Detection only."""

from interpflow.methods._attribution import AttributionMethod


class IxG(AttributionMethod):
    name = "ixg"

    def alphas(self) -> list[float]:
        return [1.0]  # the gradient at the input itself
