"""The method registry: name -> class. Add a method by writing one file and one line here."""

from interpflow.errors import ConfigError
from interpflow.methods.base import Method
from interpflow.methods.bow import BoW
from interpflow.methods.diffmean import DiffMean
from interpflow.methods.hypersteer import HyperSteer
from interpflow.methods.ig import IG
from interpflow.methods.ixg import IxG
from interpflow.methods.lat import LAT
from interpflow.methods.lora import LoRA
from interpflow.methods.loreft import LoReFT
from interpflow.methods.pca import PCA
from interpflow.methods.probe import Probe
from interpflow.methods.prompt import Prompt
from interpflow.methods.prompt_detection import PromptDetection
from interpflow.methods.reft_r1 import ReFTR1
from interpflow.methods.reps import RePS
from interpflow.methods.sae import SAE
from interpflow.methods.sae_a import SAEA
from interpflow.methods.sft import SFT
from interpflow.methods.ssv import SSV

# activations only; text only; the model in the loop; no training
METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (DiffMean, PCA, LAT, Probe, SAE, SAEA, BoW, IG, IxG, SSV, ReFTR1, RePS, LoReFT, LoRA, SFT, HyperSteer, Prompt,
                PromptDetection)
}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def build_method(cfg: dict) -> Method:
    return method_class(cfg["name"])(cfg)
