"""The method registry: name -> class. Add a method by writing one file and one line here."""

from interpflow.errors import ConfigError
from interpflow.methods.base import Method
from interpflow.methods.diffmean import DiffMean
from interpflow.methods.lat import LAT
from interpflow.methods.pca import PCA
from interpflow.methods.probe import Probe
from interpflow.methods.prompt import Prompt

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (DiffMean, PCA, LAT, Probe, Prompt)}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def build_method(cfg: dict) -> Method:
    return method_class(cfg["name"])(cfg)
