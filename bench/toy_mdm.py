"""How well the 2-D multivariate diffusions (the Auxiliary view's particles) model the two moons: a tighter
held-out −ELBO than the checkpoints' own (20,000 points × 8 draws) and how many of their samples land on the
data, plus a figure of the samples.

    python bench/toy_mdm.py [--names vpsde learned cld malda] [--out assets/toy-mdm-samples.png]

Prints a Markdown table; "on the data" is the share of 2,000 samples (200 Euler–Maruyama steps) within 0.05
of one of 20,000 fresh data points (a Gaussian blob with the data's spread scores ~0.6)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from jdx import checkpoint  # noqa: E402
from jdx.mdm.sampling import sample  # noqa: E402
from jdx.mdm.toy import toy_nll  # noqa: E402
from jdx.toy import toy_data  # noqa: E402

NEAR = 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", nargs="+", default=["vpsde", "learned", "cld", "malda"])
    ap.add_argument("--data", default="moons")
    ap.add_argument("--out", default=str(ROOT / "assets" / "toy-mdm-samples.png"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    ref, _ = toy_data(args.data, 20000, seed=5)
    fig, axes = plt.subplots(1, len(args.names), figsize=(3.4 * len(args.names), 2.4))
    print("| diffusion | −ELBO (nats/point, 20,000 × 8) | samples on the data |\n|---|---|---|")
    for ax, name in zip(axes, args.names):
        model = checkpoint.load(ROOT / "checkpoints" / f"toy-{args.data}-{name}")
        nll, se = toy_nll(model, args.data, n=20000, repeats=8)
        y, _ = sample(model, 2000, steps=200, generator=torch.Generator().manual_seed(0))
        x = y[:, 0]
        near = float((torch.cdist(x, ref).min(1).values < NEAR).float().mean())
        print(f"| {name} | {nll:.2f} ± {se:.2f} | {near:.0%} |")
        ax.scatter(ref[:3000, 0], ref[:3000, 1], s=1, c="#cccccc", label="data")
        ax.scatter(x[:, 0], x[:, 1], s=1, c="#1f77b4", label="samples")
        ax.set_title(f"{name}: −ELBO {nll:.2f}, {near:.0%} on the data", fontsize=10)
        ax.set_xlim(-1.6, 1.6), ax.set_ylim(-1.1, 1.1), ax.set_aspect("equal"), ax.tick_params(labelsize=9)
    axes[0].legend(loc="lower left", fontsize=9, markerscale=6)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"\nfigure: {args.out}")


if __name__ == "__main__":
    main()
