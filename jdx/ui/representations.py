"""Representations view: where in the U-Net, and at which noise level, the class is carried — the shipped
probe heat maps, the feature maps of one block for your image, and where your image falls among the test
set's features (a 2-D PCA coloured by class)."""
from __future__ import annotations

import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import gradio as gr
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..checkpoint import atomic_write
from ..data import load_like
from ..probes import Sweep, block_features, heat_map
from .compute import on_compute_thread
from . import models, native, plots
from .errors import clear_on_failure, clear_when, follow

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


# The noise levels the view offers: those of the shipped probe heat maps. For each, the 2-D projection of
# PCA_IMAGES test images' features at every block ships under checkpoints/representations/ (float16), so the
# first answer needs one U-Net pass on your image, not 2,000 (66–80 s on the 2-core CPU).
SHIPPED_T = (0, 10, 25, 50, 100, 150, 250)
SHIPPED = models.ROOT / "checkpoints" / "representations"
CHUNK = 250                        # test images per U-Net pass; chunk i's noise is drawn with seed = its start


class Projection(NamedTuple):
    coords: np.ndarray             # (N, 2) the test images in the first two principal components
    labels: np.ndarray             # (N,) their classes
    mean: np.ndarray               # (D,) the features' mean
    comps: np.ndarray              # (2, D) the two components


def weights_id(model) -> str:
    """sha256 of the checkpoint's weights: shipped projections are only used for the weights they came from."""
    return hashlib.sha256(Path(str(model.info.path) + ".safetensors").read_bytes()).hexdigest()[:16]


def test_projections(model, t: int, n: int = PCA_IMAGES, progress=None) -> tuple[list[Projection], np.ndarray]:
    """Every block's 2-D PCA of the pooled (2×2) features of the first n test images noised to t: one U-Net
    pass over them (the slow part) gives all blocks at once."""
    test = load_like(model.info.data, "test")
    x = test.to_model(slice(0, n)).to(next(model.parameters()).device)
    parts = []
    for i in range(0, len(x), CHUNK):
        if progress is not None:
            progress((i, len(x)), desc=f"features of {len(x)} test images at t = {t} (not shipped for this model)")
        parts.append(block_features(model, x[i:i + CHUNK], t, 2, seed=i))
    labels = test.labels[:n].numpy()
    out = []
    for b in range(len(parts[0])):
        feats = torch.cat([p[b] for p in parts])
        mean = feats.mean(0)
        _, _, v = torch.linalg.svd(feats - mean, full_matrices=False)
        comps = v[:2]                                               # (2, D)
        out.append(Projection(((feats - mean) @ comps.T).numpy(), labels, mean.numpy(), comps.numpy()))
    return out, labels


def ship(model, folder: Path = SHIPPED, ts=SHIPPED_T) -> Path:
    """Write the projections of every (block, t in ts) for this checkpoint, float16, to folder/<name>.safetensors
    (`python -m jdx.ui.representations fmnist-joint`). The page's default t = 50 comes first; the file is
    rewritten after each t with the levels done so far, and finished levels are kept in folder/.parts, so an
    interrupted run resumes."""
    parts = folder / ".parts"
    parts.mkdir(parents=True, exist_ok=True)
    ident = weights_id(model)
    out = folder / f"{model.info.name}.safetensors"
    done: dict[int, dict[str, torch.Tensor]] = {}
    for t in sorted(ts, key=lambda v: (v != 50, v)):
        part = parts / f"{model.info.name}-{ident}-t{t}.safetensors"
        if not part.is_file():
            projections, labels = test_projections(model, t)
            found = {"labels": torch.from_numpy(labels).to(torch.uint8)}
            for b, pr in enumerate(projections):
                for field in ("coords", "mean", "comps"):
                    found[f"t{t}.b{b}.{field}"] = torch.from_numpy(getattr(pr, field)).half().contiguous()
            atomic_write(part, lambda tmp: save_file(found, tmp))
        done[t] = load_file(part)
        tensors = {k: v for d in done.values() for k, v in d.items()}
        meta = {"weights": ident, "t": json.dumps(sorted(done)), "images": str(PCA_IMAGES), "pool": "2",
                "blocks": json.dumps(model.unet.block_names),
                "made_by": f"python -m jdx.ui.representations {model.info.name}"}
        atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata=meta))
        print(f"{model.info.name}: t = {t} done", flush=True)
    for part in parts.glob(f"{model.info.name}-{ident}-t*.safetensors"):
        part.unlink()                              # all in the shipped file now
    if not any(parts.iterdir()):
        parts.rmdir()
    return out


@lru_cache(maxsize=4)
def _shipped(model_name: str) -> tuple[dict, dict] | None:
    """(tensors, metadata) of the shipped projections of this checkpoint, if they match its weights."""
    path = SHIPPED / f"{model_name}.safetensors"
    if not path.is_file():
        return None
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        if meta.get("weights") != weights_id(models.get(model_name)):
            return None
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def shipped_t(model_name: str) -> tuple[int, ...]:
    found = _shipped(model_name)
    return tuple(json.loads(found[1]["t"])) if found else ()


_COMPUTED: dict[tuple[str, int], list[Projection]] = {}


def projection(model_name: str, block: int, t: int, progress=None) -> Projection:
    """The test set's projection for (block, t): shipped if it is, else computed once (about a minute on a
    2-core CPU, reported through progress) and kept for the session."""
    if t in shipped_t(model_name):
        tensors, _ = _shipped(model_name)
        f = lambda field: tensors[f"t{t}.b{block}.{field}"].float().numpy()   # noqa: E731
        return Projection(f("coords"), tensors["labels"].long().numpy(), f("mean"), f("comps"))
    if (model_name, t) not in _COMPUTED:
        if len(_COMPUTED) >= 8:
            _COMPUTED.pop(next(iter(_COMPUTED)))
        _COMPUTED[model_name, t] = test_projections(models.get(model_name), t, progress=progress)[0]
    return _COMPUTED[model_name, t][block]


def feature_mosaic(fmap: np.ndarray, cols: int = 8, max_channels: int = 32, width: int = 640) -> Image.Image:
    """The first channels of one feature map (C, H, W) tiled into one picture, each channel on its own colour
    scale (magma), 1-pixel gaps, enlarged with nearest neighbour: one PNG instead of 32 matplotlib axes (which
    took most of this view's time)."""
    n = min(max_channels, fmap.shape[0])
    h, w = fmap.shape[1:]
    rows = (n + cols - 1) // cols
    tile = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i in range(n):
        c = fmap[i].astype(np.float64)
        lo, hi = c.min(), c.max()
        r, k = divmod(i, cols)
        tile[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = (c - lo) / (hi - lo) if hi > lo else 0.5
    rgb = (colormaps["magma"](np.nan_to_num(tile, nan=1.0))[..., :3] * 255).astype(np.uint8)
    rgb[np.isnan(tile)] = 255                         # white gaps between channels
    img = Image.fromarray(rgb, "RGB")
    k = max(1, width // img.width)
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


@on_compute_thread
def representations(model_name: str, image, block: str = "", t: int = 50, seed: int = 0, progress=gr.Progress()):
    """Where an image's features fall among the test set's, at one U-Net block and noise level t.

    Args:
        model_name: a checkpoint name from the model list, e.g. "fmnist-joint".
        image: the image (a file path or URL; any size, light backgrounds are inverted).
        block: a U-Net block name, e.g. "mid" (the bottleneck, the default) or "enc4 L1 res".
        t: the noise level the image is noised to before the pass (0 = clean); answers at once for the
            shipped levels 0, 10, 25, 50, 100, 150, 250, other levels compute the test set's features first.
        seed: the seed of the noise draw.

    Returns:
        the block's first 32 feature maps (an image), the PCA of 2,000 test images with your image as a star (a
        figure), and a summary naming the majority class among the 25 nearest test images.
    """
    model = models.get(model_name)
    x = models.image_input(model, image)
    names = model.unet.block_names
    b = names.index(block) if block in names else len(model.unet.encoder_channels)   # default: the bottleneck
    t = int(min(max(int(t), 0), model.schedule.T))
    g = torch.Generator().manual_seed(int(seed))
    x_t = model.schedule.noise_to(x, t, torch.randn(x.shape, generator=g).to(x.device)) if t > 0 else x
    with torch.no_grad():                          # one pass: the maps shown and the features placed
        tt = torch.full((1,), t, device=x.device)
        feats = model.unet(x_t, tt if model.unet.config.time_input else None, return_features=True).features[b]
    fmap = feats[0]
    coords, labels, mean, comps = projection(model_name, b, t, progress)
    mine = (F.adaptive_avg_pool2d(feats.float(), 2).flatten(1)[0].cpu().numpy() - mean) @ comps.T
    maps = feature_mosaic(fmap.float().cpu().numpy())
    pca_fig = plots.pca_scatter(coords, labels, model.info.class_names, mine,
                                f"{names[b]}, t = {t}: {len(coords)} test images\n(PCA of 2×2-pooled features)")
    k = min(25, len(coords))
    nearest = np.argsort(((coords - mine) ** 2).sum(1))[:k]
    votes = np.bincount(labels[nearest], minlength=len(model.info.class_names))
    summary = (f"Block **{names[b]}**, t = {t}: {min(32, fmap.shape[0])} of its {fmap.shape[0]} channels "
               f"({fmap.shape[1]}×{fmap.shape[2]}) above, each on its own colour scale. Among the {k} test images nearest to yours in this plane, "
               f"most are **{model.info.class_names[int(votes.argmax())]}** ({votes.max()}/{k}). The plane keeps only "
               f"two directions of the features, so neighbours in it can differ in class; the probe curve below "
               f"says how well all the features separate the classes.")
    return maps, pca_fig, summary


PROBED = ("fmnist-ddpm", "fmnist-joint")


def probe_curves(block: str):
    """The shipped linear probes' test accuracy over t at one block, for each probed model (a table for a
    native line plot; no model runs): how the class fades from that block's features as noise grows."""
    curves, pixels = {}, None
    for name in PROBED:
        found = shipped_probe(name)
        if found is None or block not in found[0].blocks:
            continue
        sweep = found[0]
        curves[name] = (sweep.ts, np.asarray(sweep.accuracy)[sweep.blocks.index(block)])
        pixels = sweep.pixels if pixels is None else pixels
    return native.probe_curves(curves, pixels) if curves else None


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
        levels = [v for v in SHIPPED_T if v <= default_model.schedule.T]
        t = gr.Radio(levels, value=50 if 50 in levels else levels[-1], elem_id="rep-t",
                     label="noise level t (the heat maps' columns)")
        seed = gr.Number(0, precision=0, label="noise seed")
    run = gr.Button("Show the representation", variant="primary", elem_id="rep-btn")
    summary = gr.Markdown(elem_id="rep-summary")
    with gr.Row():
        maps = gr.Image(label="the block's feature maps (first 32 channels)", format="png", interactive=False,
                        elem_classes="pixelated", elem_id="rep-maps")
        pca = gr.Plot(label="PCA", show_label=False)
    curves = gr.LinePlot(probe_curves(block.value), x="noise level t", y="test accuracy", color="features",
                         y_lim=[0.5, 1], height=240, tooltip="all", elem_id="rep-probe-curve",
                         title="linear probe on the chosen block: test accuracy over t (a heat map row)",
                         label="probe accuracy over t", show_label=False)
    clear_when([image.change, model_box.change], [maps, pca, summary], "**Show the representation**")
    event = follow([run.click, t.change, block.change], models.if_image(representations, 3),
                   [model_box, image, block, t, seed], [maps, pca, summary], api_name="representations")
    clear_on_failure(event, [maps, pca, summary])
    block.change(probe_curves, block, curves, api_name="probe_curve", queue=False)

if __name__ == "__main__":
    for name in sys.argv[1:] or ["fmnist-joint", "fmnist-ddpm"]:
        print(ship(models.get(name, on="cpu")))
