"""Regenerates the README's pictures from the shipped checkpoints (and the metrics their JSON files hold):
    python scripts/figures.py [--only samples,counterfactuals,trajectory,cdm] [--device cpu]
Sampling is seeded, so a rerun on the same device draws the same pictures."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jdx  # noqa: E402
from jdx.counterfactual import SCALE, T_STAR, counterfactual  # noqa: E402
from jdx.data import load_dataset  # noqa: E402
from jdx.generate import generate  # noqa: E402
from jdx.viz import grid  # noqa: E402

ASSETS = ROOT / "assets"
CK = ROOT / "checkpoints"


def samples(device: str) -> None:
    joint, ddpm = jdx.load(CK / "fmnist-joint", device), jdx.load(CK / "fmnist-ddpm", device)
    grid(generate(joint, 40, seed=1).images.cpu(), nrow=10).save(ASSETS / "samples-joint.png")
    grid(generate(ddpm, 40, seed=1).images.cpu(), nrow=10).save(ASSETS / "samples-ddpm.png")
    # one column per class: row r holds the r-th sample of every class
    w = torch.eye(10).repeat(4, 1)
    grid(generate(joint, 40, weights=w, scale=8.0, seed=2).images.cpu(), nrow=10).save(ASSETS / "samples-guided.png")


def counterfactuals(device: str) -> None:
    model = jdx.load(CK / "fmnist-joint", device)
    names = model.info.class_names
    test = load_dataset("fashion-mnist", "test", 28, 1)
    idx = [int((test.labels == k).nonzero()[0]) for k in range(8)]       # the first test image of classes 0–7
    targets = [3, 8, 6, 1, 2, 7, 5, 5]
    x = test.to_model(torch.tensor(idx))
    cf = counterfactual(model, x, torch.eye(10)[targets], t_star=T_STAR, scale=SCALE, seed=0)
    before, after = cf.probs_before.argmax(1).tolist(), cf.probs_after.argmax(1).tolist()
    fig = Figure(figsize=(11, 4.2), dpi=100, facecolor="#282828")
    axes = fig.subplots(3, len(idx))
    fig.subplots_adjust(left=0.1, right=0.99, top=0.98, bottom=0.12, wspace=0.06, hspace=0.06)
    rows = [(x.cpu(), "gray", (-1, 1), "original"), (cf.x_cf.cpu(), "gray", (-1, 1), "counterfactual"),
            ((cf.x_cf - cf.x).cpu(), "gray", (-1, 1), "difference")]
    for r, (imgs, cmap, (lo, hi), label) in enumerate(rows):
        for c in range(len(idx)):
            ax = axes[r, c]
            ax.imshow(imgs[c, 0], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, color="w", fontsize=9)
        for c in range(len(idx)):
            missed = "" if after[c] == targets[c] else f"\n(target {names[targets[c]]})"
            axes[2, c].set_xlabel(f"{names[before[c]]}\n→ {names[after[c]]}{missed}", color="#f2c45a", fontsize=8)
    fig.savefig(ASSETS / "counterfactuals.png", facecolor=fig.get_facecolor())


def trajectory(device: str) -> None:
    for out in ("trajectory.png", "trajectory.gif"):
        subprocess.run([sys.executable, "-m", "jdx", "trajectory", str(CK / "fmnist-joint"), "--class", "Sneaker",
                        "--seed", "3", "--device", device, "--out", str(ASSETS / out)], check=True)


def cdm(device: str) -> None:
    model = jdx.load(CK / "fmnist-cdm", device)
    grid(generate(model, 40, seed=1).images.cpu(), nrow=10).save(ASSETS / "samples-cdm.png")
    m = model.info.metrics
    # Denoising MSE of x̂₀ vs. t, CDM beside the diffusion-only model (same images, same noise).
    ours, theirs = m["denoising_mse"], m["compare"]["denoising_mse"]
    ts = sorted(int(t) for t in ours)
    fig = Figure(figsize=(6.4, 3.4), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    ax.plot(ts, [ours[str(t)]["mse_x0"] for t in ts], "o-", label=f"CDM ({model.info.name})", color="#e15759")
    ax.plot(ts, [theirs[str(t)]["mse_x0"] for t in ts], "s-", label=f"diffusion-only ({Path(m['compare']['checkpoint']).name})",
            color="#4e79a7")
    ax.set(xlabel="t (of 500)", ylabel="MSE of x̂₀ (per pixel, [−1, 1])", yscale="log",
           title=f"denoising error vs. noise level ({m['denoising_mse_images']} test images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(ASSETS / "cdm-mse-vs-t.png")
    # One-pass bits/dim: the test set against out-of-distribution inputs.
    from jdx.ui.plots import bpd_histogram
    fig = bpd_histogram(m["nll_histogram"], m["nll_bpd"], m.get("ood_bpd", {}), label="test mean")
    fig.savefig(ASSETS / "cdm-bpd.png")


FIGURES = {"samples": samples, "counterfactuals": counterfactuals, "trajectory": trajectory, "cdm": cdm}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", default=",".join(FIGURES))
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.manual_seed(0)
    for name in args.only.split(","):
        FIGURES[name](args.device)
        print("made", name)


if __name__ == "__main__":
    main()
