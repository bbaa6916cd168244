"""Which checkpoints the app offers, loaded once and shared by every request (read-only, eval mode)."""
from __future__ import annotations

import functools
import inspect
import json
import os
import threading
import typing
from functools import lru_cache
from pathlib import Path

import gradio as gr
import torch
from torch import nn

from .. import checkpoint
from ..data import DataError, Prepared, prepare_image
from ..device import device_label as device_words, pick_device
from ..inputs import model_input, to_model
from ..protocols import Classifier, supports
from .errors import follow

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_DIR = Path(os.environ.get("JDX_CHECKPOINTS", ROOT / "checkpoints"))
IMAGE_KINDS = ("joint", "ddpm")          # the image models the views run on
_LOCK = threading.Lock()
NO_IMAGE = "No image yet: upload one, draw one, or pick an example."


def device() -> torch.device:
    return pick_device(os.environ.get("JDX_DEVICE", "auto"))


def describe(model: nn.Module) -> str:
    """One line about the model for the page: kind, size, measured accuracy, device."""
    n = sum(p.numel() for p in model.parameters())
    acc = model.info.metrics.get("test_accuracy")
    what = {"joint": "joint model (denoises and classifies)", "ddpm": "diffusion-only model (no classifier)",
            "toy": "2-D toy joint model"}.get(model.info.kind, model.info.kind)
    text = f"**{model.info.name}** — {what}, {n / 1e6:.2f} M parameters"
    if acc is not None:
        text += f", test accuracy {acc:.1%}"
    return text + f"; running on **{device_label(next(model.parameters()).device)}**."


def serving_threads() -> int:
    """PyTorch CPU threads while serving: all cores but one, which stays free for the web server (queue,
    PNG and plot encoding). On the 2-core reference machine one compute thread answered a counterfactual
    over HTTP in 1.4–1.8 s against 2.2–2.4 s with two (bench/app_latency.py; README)."""
    return int(os.environ.get("JDX_THREADS", max(1, (os.cpu_count() or 2) - 1)))


def device_label(dev: torch.device) -> str:
    """The device in words; on the CPU the threads the server computes with (launch sets them), so the card
    says the same before and after a model switch."""
    return device_words(dev, serving_threads())


def listing(kinds: tuple[str, ...] = IMAGE_KINDS, directory: Path | None = None) -> list[str]:
    """Stems of the checkpoints of these kinds, joint models first (they can classify as well as denoise)."""
    found = []
    for js in sorted(Path(directory or CHECKPOINT_DIR).glob("*.json")):
        try:
            kind = json.loads(js.read_text()).get("kind")
        except (OSError, ValueError):
            continue                      # a broken file is reported when someone picks it, not at start-up
        if kind in kinds:
            found.append((kinds.index(kind), js.stem))
    return [stem for _, stem in sorted(found)]


@lru_cache(maxsize=16)
def _load(path: str, on: str) -> nn.Module:
    return checkpoint.load(path, on)


def get(name: str, directory: Path | None = None, on: str | None = None) -> nn.Module:
    """The checkpoint NAME (a stem in the checkpoint folder, nothing else: requests cannot point the server
    at arbitrary files), loaded once."""
    if not name:
        raise gr.Error("Pick a model first.")
    folder = Path(directory or CHECKPOINT_DIR)
    if Path(name).name != name or not (folder / f"{name}.json").is_file():
        raise gr.Error(f"no checkpoint {name!r} in {folder.name}/; available: {', '.join(listing(directory=folder))}")
    path = folder / name
    with _LOCK:                           # two first requests must not load the same weights twice
        try:
            return _load(str(path), on or str(device()))
        except checkpoint.CheckpointError as e:
            raise gr.Error(str(e)) from e


def no_classifier(model: nn.Module) -> str | None:
    """Why MODEL cannot classify, or None when it can."""
    if supports(model, Classifier):
        return None
    return (f"{model.info.name} is a diffusion-only model: it has no classifier. "
            "Pick a joint model (e.g. fmnist-joint) for predictions, guidance and counterfactuals.")


def require_classifier(model: nn.Module) -> nn.Module:
    if (why := no_classifier(model)) is not None:
        raise gr.Error(why)
    return model


def T_of(name: str | None, fallback: int = 500) -> int:
    """The number of noise levels T of the checkpoint NAME (fallback before a model is picked)."""
    try:
        return get(name).schedule.T if name else fallback
    except (gr.Error, AttributeError):
        return fallback


def follow_T(model_box: gr.Dropdown, *sliders: gr.Slider) -> None:
    """Keep each noise-level slider's maximum at the chosen model's T (T is read from the model, never assumed)."""
    def update(name):
        T = T_of(name)
        return [gr.update(maximum=T)] * len(sliders) if len(sliders) > 1 else gr.update(maximum=T)
    follow(model_box.change, update, model_box, list(sliders), api_visibility="private")


def class_index(model: nn.Module, target: str | int) -> int:
    """The index of a class given by name (or index), or a clear message naming the classes."""
    try:
        return model.info.class_index(target)
    except ValueError as e:
        raise gr.Error(str(e)) from e


def image_input(model: nn.Module, image) -> torch.Tensor:
    """The uploaded file (path or PIL) → (1, C, H, W) in [−1, 1] on the model's device, or a clear message."""
    return prepared_input(model, image)[0]


def prepared_input(model: nn.Module, image) -> tuple[torch.Tensor, Prepared]:
    """image_input and the preparation itself (its steps and pictures). A file is prepared once: Predict, its
    pictures, attributions and curves all read the same upload, and a photo's pipeline takes ~15 ms."""
    if image is None:
        raise gr.Error(NO_IMAGE)
    c = model.info.data
    try:
        if isinstance(image, (str, Path)):
            prep = _prepare_file(str(image), _mtime(image), c.get("image_size", 28), c.get("channels", 1))
        else:
            _, prep = model_input(model, image)
    except DataError as e:
        raise gr.Error(str(e).replace(str(image), "the uploaded file")) from e
    return to_model(prep).to(next(model.parameters()).device), prep


def _mtime(path) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:            # a missing file: prepare_image says so in words
        return -1.0


@lru_cache(maxsize=8)          # Gradio names an upload by its content's hash: the same path is the same picture
def _prepare_file(path: str, mtime: float, size: int, channels: int) -> Prepared:
    return prepare_image(path, size, channels)


def if_image(fn, n_outputs: int, warn: bool = True, say_at: int | None = None):
    """fn for events that automatic triggers share with buttons. A button press (or an API call) runs fn as
    it is: no image or a diffusion-only model is a clear error. An automatic trigger (the image changed or
    was cleared, another model picked, a slider moved) never raises a red error from a tab nobody looks at:
    no image → one notice (`warn`; chained handlers pass False, so one action gives one notice; none when the
    picture box was emptied), and any
    error → a notice and empty outputs, so no stale plot stays beside it (output `say_at`, a Markdown, keeps
    the notice's words)."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    evt_param = inspect.Parameter("_jdx_event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.EventData)

    @functools.wraps(fn)          # keeps fn's signature (plus the event), so Gradio still injects gr.Progress
    def wrapped(*args, **kwargs):
        evt = None
        if args and isinstance(args[0], gr.EventData):
            evt, args = args[0], args[1:]
        automatic = evt is not None and evt.target is not None and not isinstance(evt.target, gr.Button)
        empty = None if n_outputs == 1 else (None,) * n_outputs
        if len(args) > 1 and args[1] is None:
            # The picture box itself emptied (its × or a failed upload, which says why in its own message):
            # the empty box says the rest. Every view listening gave "No image yet" — three of them after one
            # bad file.
            if warn and not (automatic and isinstance(evt.target, gr.Image)):
                gr.Warning(NO_IMAGE)
            return empty
        if not automatic:
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            if warn:
                gr.Warning(e.message)
            if say_at is None:
                return empty
            # The notice fades; the emptied panes stayed blank with no reason (a model with no classifier
            # picked): the view's note output keeps the reason.
            return tuple(f"*{e.message}*" if i == say_at else None for i in range(n_outputs))
    wrapped.__signature__ = sig.replace(parameters=[evt_param] + params)
    wrapped.__annotations__ = {**typing.get_type_hints(fn), "_jdx_event": gr.EventData}
    return wrapped
