"""Representations view: where in the U-Net, and at which noise level, the class is carried — the shipped
probe heat maps, the feature maps of one block for your image, and where your image falls among the test
set's features (a 2-D PCA coloured by class)."""
from __future__ import annotations

import json
from functools import lru_cache

import gradio as gr
import numpy as np
import torch

from ..data import load_like
from ..probes import Sweep, block_features, heat_map
from .compute import on_compute_thread
from . import models, plots

PROBES = models.ROOT / "assets" / "probes"
PCA_IMAGES = 2000
EXPLAIN = """**Are diffusion features good representations?** Noise an image to t, run the U-Net once, and read
the output of one block (encoder → bottleneck → decoder). A *linear probe* — logistic regression on that
block's map average-pooled to 2×2 — measures how linearly the class can be read from it. The heat maps
(`jdx probe`, test accuracy over blocks × t) show where the class lives in the shipped models. Below: the
chosen block's feature maps for your image, and where your image lands among 2,000 test images in the
first two principal components of those features."""


def shipped_probe(name: str) -> tuple[Sweep, dict] | None:
    path = PROBES / name / "probe.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    return Sweep(r["blocks"], r["t"], np.asarray(r["accuracy"]), r["pixel_probe_accuracy"]), r


def probe_figure(name: str):
    found = shipped_probe(name)
    if found is None:
        return None
    result, r = found
    block, t, acc = result.best()
    return heat_map(result, f"{name}: best {block} at t = {t} ({acc:.1%})")


@lru_cache(maxsize=8)
def _test_features(model_name: str, block: int, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(2-D PCA coordinates of PCA_IMAGES test images, their labels, the mean, the two components) for
    this block and t — computed once per (model, block, t)."""
    model = models.get(model_name)
    test = load_like(model.info.data, "test")
    x = test.to_model(slice(0, PCA_IMAGES)).to(next(model.parameters()).device)
    feats = torch.cat([block_features(model, x[i:i + 250], t, 2, seed=i)[block] for i in range(0, len(x), 250)])
    mean = feats.mean(0)
    _, _, v = torch.linalg.svd(feats - mean, full_matrices=False)
    comps = v[:2]                                                   # (2, D)
    return ((feats - mean) @ comps.T).numpy(), test.labels[:PCA_IMAGES].numpy(), mean.numpy(), comps.numpy()


@on_compute_thread
def representations(model_name: str, image, block: str = "", t: int = 50, seed: int = 0):
    """→ (the block's feature maps as a grid figure, the PCA figure, a summary)."""
    model = models.get(model_name)
    x = models.image_input(model, image)
    names = model.unet.block_names
    b = names.index(block) if block in names else len(model.unet.encoder_channels)   # default: the bottleneck
    t = int(min(max(int(t), 0), model.schedule.T))
    g = torch.Generator().manual_seed(int(seed))
    x_t = model.schedule.noise_to(x, t, torch.randn(x.shape, generator=g).to(x.device)) if t > 0 else x
    with torch.no_grad():
        tt = torch.full((1,), t, device=x.device)
        fmap = model.unet(x_t, tt if model.unet.config.time_input else None, return_features=True).features[b][0]
    coords, labels, mean, comps = _test_features(model_name, b, t)
    mine = (block_features(model, x, t, 2, seed=int(seed))[b][0].numpy() - mean) @ comps.T
    maps_fig = plots.channel_grid(fmap.float().cpu().numpy(), f"{names[b]} at t = {t}: {fmap.shape[0]} channels, "
                                  f"{fmap.shape[1]}×{fmap.shape[2]}")
    pca_fig = plots.pca_scatter(coords, labels, model.info.class_names, mine,
                                f"{names[b]}, t = {t}: {PCA_IMAGES} test images (PCA of 2×2-pooled features)")
    k = min(25, len(coords))
    nearest = np.argsort(((coords - mine) ** 2).sum(1))[:k]
    votes = np.bincount(labels[nearest], minlength=len(model.info.class_names))
    summary = (f"Block **{names[b]}**, t = {t}. Among the {k} test images nearest to yours in this plane, "
               f"most are **{model.info.class_names[int(votes.argmax())]}** ({votes.max()}/{k}).")
    return maps_fig, pca_fig, summary


def build(model_box: gr.Dropdown, image: gr.Image, default_model) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        for name in ("fmnist-ddpm", "fmnist-joint"):
            fig = probe_figure(name)
            if fig is not None:
                gr.Plot(fig, label=f"{name} probe", show_label=False)
    names = default_model.unet.block_names
    with gr.Row():
        block = gr.Dropdown(names, value=names[len(default_model.unet.encoder_channels)], label="block",
                            elem_id="rep-block")
        t = gr.Slider(0, default_model.schedule.T, value=50, step=1, label="noise level t")
        seed = gr.Number(0, precision=0, label="noise seed")
    summary = gr.Markdown(elem_id="rep-summary")
    with gr.Row():
        maps = gr.Plot(label="feature maps", show_label=False)
        pca = gr.Plot(label="PCA", show_label=False)
    run = gr.Button("Show the representation", variant="primary", elem_id="rep-btn")
    gr.on([run.click, t.release, block.change], models.if_image(representations, 3), [model_box, image, block, t, seed],
          [maps, pca, summary], api_name="representations")
