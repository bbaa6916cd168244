"""Is the L1 of the default's edits a haze of small changes? Keep only the largest changes of each dev-split
edit (its pixels copied into the original in order of |Δ|) and ask the separate classifier again (issue 12).

    python bench/counterfactual_prune.py

The dev split of bench/counterfactual_dev.py (160 test images, never the benchmark's), one default edit each
(best-of, seed 1000 + i). Prints validity and L1 for fixed fractions of the changes, then for a per-image
fraction chosen by the joint model itself: the smallest whose target probability, averaged over 8 shifted and
mirrored copies, reaches a threshold (the separate classifier is used only to score)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import jdx  # noqa: E402
from jdx.counterfactual import counterfactual  # noqa: E402
from jdx.counterfactual_methods import random_transforms, transform  # noqa: E402
from jdx.data import load_like  # noqa: E402
from counterfactual_dev import dev_split  # noqa: E402

FRACTIONS = (0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1.0)


def main() -> None:
    torch.set_num_threads(2)
    model, clf = jdx.load(ROOT / "checkpoints/fmnist-joint"), jdx.load(ROOT / "checkpoints/fmnist-classifier")
    test = load_like(model.info.data, "test")
    idx, target = dev_split(test, model.num_classes)
    x = test.to_model(idx)
    w = torch.nn.functional.one_hot(target, model.num_classes).float()
    x_cf = torch.cat([counterfactual(model, x[i:i + 40], w[i:i + 40], seed=[1000 + i + r for r in range(40)]).x_cf
                      for i in range(0, len(x), 40)])
    taus = random_transforms(8, torch.Generator().manual_seed(7))
    delta = x_cf - x
    order = delta.abs().flatten(1).argsort(1, descending=True)
    rows = np.arange(len(x))
    valid, l1, belief = (np.zeros((len(x), len(FRACTIONS))) for _ in range(3))
    for j, q in enumerate(FRACTIONS):
        keep = torch.zeros(len(x), delta[0].numel()).scatter_(1, order[:, :max(1, int(q * delta[0].numel()))], 1.0)
        x_q = x + delta * keep.view_as(delta)
        valid[:, j] = (clf.predict(x_q).argmax(-1) == target).numpy()
        l1[:, j] = ((x_q - x).abs().flatten(1).mean(1) / 2).numpy()
        with torch.no_grad():
            p = torch.stack([model.classify(transform(x_q, tau), 0).softmax(-1) for tau in taus]).mean(0)
        belief[:, j] = p[torch.arange(len(x)), target].numpy()
        print(f"largest {q:.0%} of the changes: validity {valid[:, j].mean():.1%}, L1 {l1[:, j].mean():.4f}")
    for thr in (0.5, 0.9, 0.95):
        ok = belief >= thr
        j = np.where(ok.any(1), ok.argmax(1), len(FRACTIONS) - 1)
        print(f"per image, the joint model's belief ≥ {thr}: validity {valid[rows, j].mean():.1%}, "
              f"L1 {l1[rows, j].mean():.4f}")


if __name__ == "__main__":
    main()
