"""The model kinds a checkpoint can hold: kind → builder from NAME.json's "config" (an explicit registry, never
a class looked up by name), and the checks a config and its weights pass before a model is built from them."""
from __future__ import annotations

from typing import Callable

from torch import nn

from .classifier import ClassifierConfig, FeatureClassifier
from .diffusion import ScheduleConfig
from .joint import DiffusionModel, HeadConfig, JointModel
from .unet import UNetConfig


def _build_ddpm(c: dict) -> nn.Module:
    return DiffusionModel(UNetConfig.from_dict(c["unet"]), ScheduleConfig(**c["schedule"]))


def _build_joint(c: dict) -> nn.Module:
    return JointModel(UNetConfig.from_dict(c["unet"]), ScheduleConfig(**c["schedule"]), HeadConfig(**c["head"]))


def _build_classifier(c: dict) -> nn.Module:
    return FeatureClassifier(ClassifierConfig(**c["classifier"]))


def _build_cdm(c: dict) -> nn.Module:
    from .cdm import CDM
    return CDM(UNetConfig.from_dict(c["unet"]), ScheduleConfig(**c["schedule"]))


def _build_toy_cdm(c: dict) -> nn.Module:
    from .toy import ToyCDM, ToyConfig
    return ToyCDM(ToyConfig(**c["toy"]))


def _build_toy(c: dict) -> nn.Module:
    from .toy import ToyConfig, ToyJointModel
    return ToyJointModel(ToyConfig(**c["toy"]))


def _build_mdm(c: dict) -> nn.Module:
    from .mdm import MDM, MDMConfig
    return MDM(MDMConfig.from_dict(c))


# kind → builder from the JSON "config"; later model families register here.
REGISTRY: dict[str, Callable[[dict], nn.Module]] = {
    "ddpm": _build_ddpm, "joint": _build_joint, "classifier": _build_classifier, "toy": _build_toy,
    "cdm": _build_cdm, "toy-cdm": _build_toy_cdm, "mdm": _build_mdm,
}


# Fields of a model config that must be whole numbers ≥ 1, and fractions that must lie in [0, 1).
POSITIVE_INTS = {"T", "in_channels", "out_channels", "image_size", "base_channels", "num_res_blocks", "num_classes",
                 "width", "feature_dim", "hidden", "depth", "K", "dim"}
FRACTIONS = {"dropout"}


def validate_config(config: dict, where: str = "config") -> None:
    """Reject configs that would build a model computing nonsense (T = 0 gave NaN probabilities and exit 0)."""
    if not isinstance(config, dict):
        raise ValueError(f"{where} must be an object, not {type(config).__name__}")
    for k, v in config.items():
        at = f"{where}.{k}"
        if isinstance(v, dict):
            validate_config(v, at)
        elif k in POSITIVE_INTS and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{at} = {v!r}: must be a whole number ≥ 1")
        elif k in FRACTIONS and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1):
            raise ValueError(f"{at} = {v!r}: must be in [0, 1)")
        elif k == "channel_mult" and (not isinstance(v, list) or not v
                                      or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in v)):
            raise ValueError(f"{at} = {v!r}: must be a non-empty list of whole numbers ≥ 1")
        elif k in ("beta_start", "beta_end") and (not isinstance(v, (int, float)) or not 0 < v < 1):
            raise ValueError(f"{at} = {v!r}: must be in (0, 1)")
        elif k in ("aux_var", "init_aux_var") and (not isinstance(v, (int, float)) or v < 0):
            raise ValueError(f"{at} = {v!r}: must be ≥ 0")
    unet = config.get("unet") if isinstance(config.get("unet"), dict) else None
    if unet and any(not isinstance(a, int) or not 0 <= a < len(unet.get("channel_mult", [])) for a in unet.get("attention_levels", [])):
        raise ValueError(f"{where}.unet.attention_levels = {unet['attention_levels']!r}: each must index channel_mult")
    s = config.get("schedule")
    if isinstance(s, dict) and s.get("beta_start", 0) > s.get("beta_end", 1):
        raise ValueError(f"{where}.schedule: beta_start {s['beta_start']} > beta_end {s['beta_end']}")


def architecture_mismatch(state: dict, reference: dict) -> str:
    """'' when the state dict fits the model; else which tensors are missing, unexpected or of another shape."""
    wrong = [f"{k}: {tuple(state[k].shape)} in the weights, {tuple(v.shape)} in the model"
             for k, v in reference.items() if k in state and state[k].shape != v.shape]
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    parts = []
    for what, items in (("shape differs", wrong), ("missing from the weights", missing),
                        ("not in the model", unexpected)):
        if items:
            more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{what}: " + "; ".join(items[:3]) + more)
    return ". ".join(parts)
