"""interpflow: benchmarks of interpretability methods for language models."""

__version__ = "0.1.0"
