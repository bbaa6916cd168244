"""Checkpoints: NAME.safetensors (weights, no pickle) + NAME.json (architecture, schedule, data, how it
was trained, measured metrics).

Each file is written atomically (a temp file in the same folder, then os.replace), and the pair is made
atomic by making the weights self-describing: the safetensors metadata carries the whole JSON (less the
file hash), a hash of the tensors themselves, and the sha256 of the JSON it replaces. A process killed
between replacing the weights and replacing the JSON leaves new weights beside the previous JSON; `load`
recognises that pair (the weights name that JSON as the one they replace) and uses the config stored in the
weights. Any other mismatch is an error. Which model each "kind" builds, and the checks a config passes, are
in jdx/registry.py."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes, save as save_bytes
from torch import nn

from .registry import REGISTRY, architecture_mismatch, validate_config  # noqa: F401  (re-exported)

FORMAT = "jdx-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupted or does not match its config."""


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

    def class_index(self, value: str | int) -> int:
        return class_index(value, self.class_names)


def class_index(value: str | int, names: list[str]) -> int:
    """A class index, or a (case-insensitive) class name or unique prefix → index; a ValueError naming the
    classes otherwise. The one class-name lookup of the CLI and the app."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        k = int(text)
        if not 0 <= k < len(names):
            raise ValueError(f"class {k} out of range 0…{len(names) - 1}")
        return k
    low = [n.lower() for n in names]
    if text.lower() in low:
        return low.index(text.lower())
    hits = [i for i, n in enumerate(low) if n.startswith(text.lower())]
    if len(hits) == 1 and text:
        return hits[0]
    raise ValueError(f"unknown class {text!r}; classes: " + ", ".join(f"{i}={n}" for i, n in enumerate(names)))


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


def _split(raw: bytes) -> tuple[dict, bytes]:
    """A safetensors file's bytes → (header dict, tensor data): 8 bytes of header length, the JSON header, data."""
    n = int.from_bytes(raw[:8], "little")
    if len(raw) < 8 or 8 + n > len(raw):
        raise ValueError("header length points past the end of the file")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def content_sha256(header: dict, data: bytes) -> str:
    """sha256 over the tensors' names, dtypes, shapes, offsets and bytes: what the weights are, whatever the
    metadata beside them says (so it can be stored in that metadata)."""
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    h = hashlib.sha256(json.dumps(tensors, sort_keys=True).encode())
    h.update(data)
    return h.hexdigest()


def _self_verified_meta(raw: bytes) -> dict | None:
    """The JSON meta stored inside the weights when their own content hash checks out, else None."""
    try:
        header, data = _split(raw)
        embedded = header.get("__metadata__") or {}
        if embedded.get("content_sha256") != content_sha256(header, data):
            return None
        return {**json.loads(embedded["meta"]), "_replaces": embedded.get("replaces", "")}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def save(model: nn.Module, path: str | Path, data: dict, training: dict | None = None,
         metrics: dict | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Write stem.safetensors, then stem.json. The weights carry the JSON too (see the module docstring), so a
    kill between the two replacements leaves a pair that `load` still accepts."""
    stem = stem_of(path)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    weights, js = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    meta = {
        "format": FORMAT,
        "kind": model.kind,
        "config": model.config_dict(),
        "data": data,
        "weights": {"file": weights.name, "dtype": str(dtype).removeprefix("torch."),
                    "parameters": sum(p.numel() for p in model.parameters())},
        "training": training or {},
        "metrics": metrics or {},
    }
    try:                                        # the JSON these weights replace: its hash marks the pair
        replaces = read_meta(js).get("weights", {}).get("sha256", "") if js.is_file() else ""
    except CheckpointError:
        replaces = ""
    plain = save_bytes(tensors)                 # tensor data do not depend on the metadata: hash them first
    meta["weights"]["content_sha256"] = content_sha256(*_split(plain))
    raw = save_bytes(tensors, metadata={"format": FORMAT, "kind": model.kind, "meta": json.dumps(meta),
                                        "content_sha256": meta["weights"]["content_sha256"], "replaces": replaces})

    def write_weights(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(raw)
    atomic_write(weights, write_weights)
    meta["weights"]["sha256"] = hashlib.sha256(raw).hexdigest()
    write_json(js, meta)
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
    """Load a checkpoint by stem or either file; returns the model in eval mode with `.info` attached.

    verify=True (the default) checks the weights against the sha256 in NAME.json, or against the hash the
    weights carry themselves; verify=False loads unchecked weights (say so explicitly, e.g. `jdx --no-verify`)."""
    stem = stem_of(path)
    meta = read_meta(stem)
    weights = stem.with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file not found")
    raw = weights.read_bytes()
    if verify:
        meta = _verified_meta(stem, meta, raw)
    kind = meta.get("kind")
    if kind not in REGISTRY:
        raise CheckpointError(f"{stem}.json: unknown model kind {kind!r} (known: {', '.join(REGISTRY)})")
    try:
        validate_config(meta["config"])
        model = REGISTRY[kind](meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{stem}.json: invalid model config ({e})") from e
    try:
        state = load_bytes(raw)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from e
    reference = model.state_dict()
    problem = architecture_mismatch(state, reference)
    if problem:
        raise CheckpointError(f"{weights}: weights do not match the architecture in {stem.name}.json ({problem})")
    model.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()}, strict=True)
    model.info = CheckpointInfo(stem, kind, meta["config"], meta.get("data", {}), meta.get("training", {}),
                                meta.get("metrics", {}))
    return model.to(device).eval()


def _verified_meta(stem: Path, meta: dict, raw: bytes) -> dict:
    """The meta to build the model from, once the weights are known to belong to it (see load)."""
    weights = stem.with_suffix(".safetensors")
    expected = meta.get("weights", {}).get("sha256")
    if expected and hashlib.sha256(raw).hexdigest() == expected:
        return meta
    inner = _self_verified_meta(raw)
    if inner is not None and not expected:
        return meta                                 # no hash in the JSON, but the weights check themselves
    if inner is not None and inner.pop("_replaces") == expected:
        # Killed between the two replacements of a save: these weights are the newer half, and carry their JSON.
        warnings.warn(f"{stem.name}.json is from the save before {weights.name} (an interrupted save); "
                      "using the config stored in the weights. The next save rewrites the JSON.", stacklevel=3)
        return inner
    if not expected:
        raise CheckpointError(f"{stem}.json has no weights.sha256, so {weights.name} cannot be verified; load it "
                              "unverified on purpose with checkpoint.load(..., verify=False) or `jdx --no-verify …`")
    raise CheckpointError(f"{weights}: contents do not match the sha256 in {stem.name}.json "
                          "(the file is truncated, corrupted, or from another checkpoint)")
