"""How far real images of one class lie from the nearest real image of another (issue 12's honest display).

For `--per-class` test images of every class, the mean |Δ| (pixels in [0, 1], the counterfactual's L1) to the
nearest *training* image of each class; per (source, target) pair the 5th percentile and the median. An edit
that flips the label with a smaller change than 95 % of real source images need to reach the nearest real
target image is small for the pair, whatever the classifiers say: the app says so (jdx.second_opinion).

    python bench/real_distances.py [--per-class 200] [--out assets/results/counterfactuals/real-distances.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jdx.data import load_fashion_mnist  # noqa: E402


def nearest_per_class(x: torch.Tensor, train: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k): mean |x_i − y| to the nearest training image y of each class, pixels in [0, 1]."""
    groups = [train[labels == c] for c in range(k)]
    return torch.stack([torch.stack([(g - xi).abs().mean(1).min() for g in groups]) for xi in x])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--out", default=str(ROOT / "assets/results/counterfactuals/real-distances.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    tr, te = load_fashion_mnist("train"), load_fashion_mnist("test")
    k = len(tr.class_names)
    train = tr.images.reshape(len(tr.labels), -1).float() / 255
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([torch.nonzero(te.labels == c)[:, 0][torch.randperm(int((te.labels == c).sum()), generator=g)]
                     [:args.per_class] for c in range(k)])
    x = te.images[idx].reshape(len(idx), -1).float() / 255
    d = nearest_per_class(x, train, tr.labels, k).numpy()
    src = te.labels[idx].numpy()
    p5 = [[float(np.percentile(d[src == a, b], 5)) for b in range(k)] for a in range(k)]
    med = [[float(np.median(d[src == a, b])) for b in range(k)] for a in range(k)]
    result = {"class_names": tr.class_names, "per_class": args.per_class, "p5": p5, "median": med,
              "unit": "mean |Δ|, pixels in [0, 1]", "seconds": round(time.time() - start, 1),
              "command": "python bench/real_distances.py " + " ".join(argv or sys.argv[1:])}
    Path(args.out).write_text(json.dumps(result, indent=1))
    names = [n[:7] for n in tr.class_names]
    print("5th percentile of the L1 from a real test image (row) to the nearest training image of a class (column)")
    print("| from \\ to | " + " | ".join(names) + " |\n|---|" + "---:|" * k)
    for a in range(k):
        print(f"| {names[a]} | " + " | ".join("—" if a == b else f"{p5[a][b]:.3f}" for b in range(k)) + " |")


if __name__ == "__main__":
    main()
