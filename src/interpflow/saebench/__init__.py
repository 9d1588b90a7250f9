"""The SAE benchmark (SAEBench, Karvonen et al. 2025): its evaluations as stages over cached activations."""
