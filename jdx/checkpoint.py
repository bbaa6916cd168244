"""Checkpoints: NAME.safetensors (weights, no pickle) + NAME.json (architecture, schedule, data, how it
was trained, measured metrics). Written atomically: a temp file in the same folder, then os.replace, so a
killed process never leaves a half-written checkpoint behind."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .classifier import ClassifierConfig, FeatureClassifier
from .diffusion import ScheduleConfig
from .joint import DiffusionModel, HeadConfig, JointModel
from .unet import UNetConfig

FORMAT = "jdx-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupted or does not match its config."""


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


@dataclass
class CheckpointInfo:
    """What NAME.json says, attached to a loaded model as `model.info`."""
    path: Path                      # the stem, without suffix
    kind: str
    config: dict
    data: dict
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return self.data.get("class_names", [])

    @property
    def name(self) -> str:
        return self.path.name


def stem_of(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".safetensors") else p


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """write(tmp_path), then rename over path: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)       # mkstemp makes 0600 files; checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(model: nn.Module, path: str | Path, data: dict, training: dict | None = None,
         metrics: dict | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Write stem.safetensors and stem.json. Weights first, so a JSON never points at missing weights."""
    stem = stem_of(path)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    weights = stem.with_suffix(".safetensors")
    atomic_write(weights, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT, "kind": model.kind}))
    meta = {
        "format": FORMAT,
        "kind": model.kind,
        "config": model.config_dict(),
        "data": data,
        "weights": {"file": weights.name, "sha256": sha256(weights), "dtype": str(dtype).removeprefix("torch."),
                    "parameters": sum(p.numel() for p in model.parameters())},
        "training": training or {},
        "metrics": metrics or {},
    }
    write_json(stem.with_suffix(".json"), meta)
    return stem


def write_json(path: Path, obj: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    atomic_write(path, write)


def read_meta(path: str | Path) -> dict:
    js = stem_of(path).with_suffix(".json")
    if not js.is_file():
        raise CheckpointError(f"{js}: checkpoint config not found (a checkpoint is NAME.json + NAME.safetensors)")
    try:
        meta = json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{js}: not valid JSON ({e}); the file is truncated or corrupted") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{js}: not a JDX checkpoint config (expected \"format\": \"{FORMAT}\")")
    return meta


def update_metrics(path: str | Path, metrics: dict) -> None:
    """Merge measured metrics into NAME.json (the weights are untouched, so their hash still holds)."""
    js = stem_of(path).with_suffix(".json")
    meta = read_meta(js)
    meta["metrics"] = {**meta.get("metrics", {}), **metrics}
    write_json(js, meta)


def load(path: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> nn.Module:
    """Load a checkpoint by stem or either file; returns the model in eval mode with `.info` attached."""
    stem = stem_of(path)
    meta = read_meta(stem)
    kind = meta.get("kind")
    if kind not in REGISTRY:
        raise CheckpointError(f"{stem}.json: unknown model kind {kind!r} (known: {', '.join(REGISTRY)})")
    weights = stem.with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file not found")
    expected = meta.get("weights", {}).get("sha256")
    if verify and expected and sha256(weights) != expected:
        raise CheckpointError(f"{weights}: contents do not match the sha256 in {stem.name}.json "
                              "(the file is truncated, corrupted, or from another checkpoint)")
    try:
        model = REGISTRY[kind](meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{stem}.json: invalid model config ({e})") from e
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from e
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{weights}: weights do not match the architecture in {stem.name}.json "
                              f"({str(e).splitlines()[0]})") from e
    model.info = CheckpointInfo(stem, kind, meta["config"], meta.get("data", {}), meta.get("training", {}),
                                meta.get("metrics", {}))
    return model.to(device).eval()
