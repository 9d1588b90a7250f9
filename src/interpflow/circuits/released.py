"""InterpBench's released SIIT models, read without running pickled code (opt-in).

The release (Hugging Face hub `cybershiptrooper/InterpBench`) has one folder per case id, each with
`ll_model.pth` (the low-level model's state dict, `torch.save`d), `ll_model_cfg.pkl` (its
TransformerLens config, pickled: a dict from `HookedTransformerConfig.to_dict()`, or for some cases
the config object itself), `meta.json` (the SIIT training arguments) and `edges.pkl` (the circuit:
a pickled list of node-name pairs).

Unpickling a file from elsewhere can run any code it names, so the config goes through
`ConfigUnpickler`, which admits only the classes a config holds (torch dtypes and devices, numpy
scalars, the config class, read as plain data) and refuses anything else by name; the state dict
goes through `torch.load(weights_only=True)` and `edges.pkl` through `PlainDataUnpickler`, which
admits no class at all. Nothing here is read unless asked for: `load_released` with a folder, or
`released_models` given a `released` entry (the workflow does not call either yet).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interpflow.errors import ConfigError

HUB_REPO = "cybershiptrooper/InterpBench"
WEIGHTS_FILE = "ll_model.pth"
CONFIG_FILE = "ll_model_cfg.pkl"
META_FILE = "meta.json"
EDGES_FILE = "edges.pkl"

# Where the pickled config class lives: TransformerLens < 3 and >= 3.
_CONFIG_CLASS_MODULES = ("transformer_lens.HookedTransformerConfig",
                         "transformer_lens.config.hooked_transformer_config")


class _ConfigFields:
    """Stands in for a pickled HookedTransformerConfig: receives its fields as plain attributes,
    so that no method of the real class runs while unpickling."""


def _admitted() -> dict[tuple[str, str], object]:
    """(module, name) -> what a pickled config may refer to: nothing that runs code beyond building a value."""
    admitted = {("torch", name): getattr(torch, name) for name in ("float16", "bfloat16", "float32", "float64")}
    admitted[("torch", "device")] = torch.device
    # how pickle protocols < 3 write bytes (inside numpy scalars)
    admitted[("_codecs", "encode")] = lambda text, encoding="latin1": text.encode(encoding)
    admitted[("numpy", "dtype")] = np.dtype
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1 and 2 write a scalar so
        admitted[(module, "scalar")] = _numpy_scalar
    for module in _CONFIG_CLASS_MODULES:
        admitted[(module, "HookedTransformerConfig")] = _ConfigFields
    for old, new in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):  # pickle protocols 0 and 1
        admitted[(old, new)] = _reconstruct
    admitted[("__builtin__", "object")] = admitted[("builtins", "object")] = object
    return admitted


def _numpy_scalar(dtype: np.dtype, data: bytes) -> np.generic:
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"a numpy scalar of object dtype {dtype} is not a config value")
    return np.frombuffer(data, dtype=dtype)[0]


def _reconstruct(cls, base, state):
    if cls is not _ConfigFields or base is not object or state is not None:
        raise pickle.UnpicklingError(f"refusing to rebuild {cls!r} from {base!r}")
    return _ConfigFields()


class ConfigUnpickler(pickle.Unpickler):
    """Reads a pickled TransformerLens config; any other class the pickle names is refused."""

    ADMITTED = _admitted()

    def find_class(self, module: str, name: str):
        try:
            return self.ADMITTED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a TransformerLens config pickle holds only "
                f"{sorted({m for m, _ in self.ADMITTED})} values; this file may run code") from None


class PlainDataUnpickler(pickle.Unpickler):
    """Reads a pickle of builtin values only (edges.pkl: a list of (str, str)); names no class at all."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: this file should hold only lists of strings")


def read_edges(path: str | Path) -> list[tuple[str, str]]:
    """The ground-truth circuit's edges as InterpBench names its nodes (`hook_embed`, `hook_pos_embed`,
    `blocks.{l}.attn.hook_result[{h}]`, ...), not yet in this project's node names."""
    with open(path, "rb") as f:
        try:
            edges = PlainDataUnpickler(f).load()
        except pickle.UnpicklingError as e:
            raise ConfigError(f"{path}: {e}. Only read InterpBench's released files.") from None
    if not isinstance(edges, list) or not all(isinstance(e, (tuple, list)) and len(e) == 2
                                              and all(isinstance(n, str) for n in e) for e in edges):
        raise ConfigError(f"{path}: expected a list of (upstream, downstream) node names")
    return [tuple(e) for e in edges]


def read_config(path: str | Path) -> dict:
    """The HookedTransformerConfig fields of a pickled config (dict or object), without running its code."""
    with open(path, "rb") as f:
        try:
            pickled = ConfigUnpickler(f).load()
        except pickle.UnpicklingError as e:
            raise ConfigError(f"{path}: {e}. Only read InterpBench's released files.") from None
    fields = vars(pickled) if isinstance(pickled, _ConfigFields) else pickled
    if not isinstance(fields, dict):
        raise ConfigError(f"{path}: expected a HookedTransformerConfig or its dict, found {type(fields).__name__}")
    return fields


def config_of(fields: dict, device: str = "cpu") -> HookedTransformerConfig:
    """A config built from stored fields: those the installed TransformerLens takes as arguments;
    the derived ones (and the device the model was trained on) it computes again."""
    arguments = {f.name for f in dataclasses.fields(HookedTransformerConfig) if f.init}
    kept = {k: v.item() if isinstance(v, np.generic) else v for k, v in fields.items() if k in arguments}
    return HookedTransformerConfig(**{**kept, "device": device})


@dataclass
class ReleasedModel:
    case: str
    model: HookedTransformer
    training_args: dict
    """meta.json: the arguments InterpBench trained the model with."""
    edges: list[tuple[str, str]] | None
    """edges.pkl (in InterpBench's node names) where the case has it."""


def load_released(release_dir: str | Path, case: str, device: str = "cpu") -> ReleasedModel:
    """The released SIIT model of one case from a local copy of the hub release."""
    folder = Path(release_dir) / str(case)
    missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE, META_FILE) if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder}: no {', '.join(missing)}; download the release with "
                          f"`huggingface-cli download {HUB_REPO} --local-dir {release_dir}`")
    model = HookedTransformer(config_of(read_config(folder / CONFIG_FILE), device))
    try:
        weights = torch.load(folder / WEIGHTS_FILE, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConfigError(f"{folder / WEIGHTS_FILE}: not a plain state dict ({e})") from None
    model.load_state_dict(weights)
    model.eval()
    edges = read_edges(folder / EDGES_FILE) if (folder / EDGES_FILE).is_file() else None
    return ReleasedModel(case=str(case), model=model, training_args=json.loads((folder / META_FILE).read_text()),
                         edges=edges)


def released_models(circuits_cfg: dict, device: str = "cpu") -> dict[str, ReleasedModel]:
    """The released models the circuits config asks for (`released: {dir, cases}`); none without it."""
    released = circuits_cfg.get("released")
    if not released:
        return {}
    if not isinstance(released, dict) or not released.get("dir") or not released.get("cases"):
        raise ConfigError(f"circuits.released = {released!r}: give {{dir: <local copy of {HUB_REPO}>, "
                          "cases: [<case id>, ...]}, or leave it out")
    return {str(case): load_released(released["dir"], case, device) for case in released["cases"]}
