"""Shared fixtures: tiny synthetic data sets and tiny checkpoints trained through the real CLI."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jdx.cli import main

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(2)
TINY = ["--image-size", "16", "--base-channels", "8", "--channel-mult", "1,2", "--num-res-blocks", "1",
        "--attention-levels", "1", "--T", "50", "--batch-size", "16", "--eval-every", "5", "--eval-n", "16", "--quiet"]


def shape_image(k: int, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """Class 0: a bright square, 1: a vertical bar, 2: a horizontal bar — on black, with jitter and noise."""
    a = np.zeros((size, size))
    o = rng.integers(-2, 3, 2)
    c = size // 2
    if k == 0:
        a[c - 4 + o[0]: c + 4 + o[0], c - 4 + o[1]: c + 4 + o[1]] = 1
    elif k == 1:
        a[2:-2, c - 2 + o[1]: c + 2 + o[1]] = 1
    else:
        a[c - 2 + o[0]: c + 2 + o[0], 2:-2] = 1
    a = np.clip(a * 0.9 + rng.normal(0, 0.05, a.shape), 0, 1)
    return (a * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for k, name in enumerate(["square", "vbar", "hbar"]):
        (root / name).mkdir()
        for i in range(24):
            Image.fromarray(shape_image(k, rng)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_joint(tmp_path_factory, shapes_dir) -> Path:
    out = tmp_path_factory.mktemp("ck") / "joint"
    assert main(["train", "joint", "--data", str(shapes_dir), "--out", str(out), "--steps", "10", "--lam", "1"] + TINY) == 0
    return out


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, shapes_dir) -> Path:
    out = tmp_path_factory.mktemp("ck") / "clf"
    assert main(["train", "classifier", "--data", str(shapes_dir), "--out", str(out), "--steps", "10",
                 "--image-size", "16", "--batch-size", "16", "--eval-n", "16", "--quiet"]) == 0
    return out


@pytest.fixture()
def app_checkpoints(tmp_path, monkeypatch):
    """serve(name=stem, …) → a checkpoint folder holding those tiny checkpoints under those names, which the
    app's model loader (jdx.ui.models) reads for the rest of the test."""
    from jdx.ui import models

    def serve(**stems: Path) -> Path:
        folder = tmp_path / "ck"
        folder.mkdir(exist_ok=True)
        for name, stem in stems.items():
            for suffix in (".json", ".safetensors"):
                shutil.copy(stem.with_suffix(suffix), folder / f"{name}{suffix}")
        monkeypatch.setattr(models, "CHECKPOINT_DIR", folder)
        return folder
    return serve
