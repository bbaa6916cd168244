"""A user's image → what a checkpoint takes: prepared as its training data were (jdx.data.prepare_image), then
mapped to the model's range. The one image→tensor step of the CLI and the app."""
from __future__ import annotations

import torch
from torch import nn

from .data import Prepared, prepare_image


def model_input(model: nn.Module, source, preprocess: str = "auto") -> tuple[torch.Tensor, Prepared]:
    """An image (path or PIL) prepared for this checkpoint's size and channels: (1, C, H, W) in [−1, 1] on the
    CPU (x = pixel/127.5 − 1, as in training), and the preparation (what was done, and how to map an edit
    back onto the original)."""
    c = model.info.data
    prep = prepare_image(source, c.get("image_size", 28), c.get("channels", 1), preprocess=preprocess)
    return to_model(prep), prep


def to_model(prep: Prepared) -> torch.Tensor:
    """The prepared pixels as the model's input: (1, C, H, W), x = pixel/127.5 − 1."""
    return prep.pixels[None].float() / 127.5 - 1
