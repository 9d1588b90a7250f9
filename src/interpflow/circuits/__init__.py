"""The circuit benchmark (InterpBench protocol): Tracr tasks, SIIT models, discovery, scoring."""

# Discovery methods whose circuits are thresholds over their edge scores, so `circuits.noise_floor`
# applies to them; the others (ACDC's tau, SP's mask >= 0.5) decide each circuit by their own knob.
# Here, not in discovery/, so the Snakefile can read it without importing TransformerLens.
RANKS_BY_SCORE = frozenset({"eap", "eap_ig"})
