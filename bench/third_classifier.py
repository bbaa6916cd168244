"""A third Fashion-MNIST classifier the project never trained through jdx: an MLP on raw pixels (no convolution,
unlike both the joint model and checkpoints/fmnist-classifier), used only to check that the counterfactual
defaults chosen against checkpoints/fmnist-classifier do not merely fool that one judge.

    python bench/third_classifier.py [--epochs 12] [--out runs/third-classifier.pt]

Trains on the 60 000 training images (random ±2-pixel shifts), one CPU thread, a few minutes; prints the
test accuracy. The weights go under runs/ (git-ignored): they are not shipped. `load()` returns a callable
x (B, 1, 28, 28) in [−1, 1] → probabilities (B, 10), the convention of jdx's models.
"""
from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

DATA = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "runs" / "third-classifier.pt"


def read_idx(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) in [−1, 1] and labels (N,) of the 'train' or 't10k' split."""
    with gzip.open(DATA / f"{split}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(DATA / f"{split}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(x.astype(np.float32) / 127.5 - 1), torch.from_numpy(y.astype(np.int64))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))


class ThirdClassifier:
    """The trained MLP as a judge: predict(x) → (B, 10) probabilities."""

    def __init__(self, net: nn.Module):
        self.net = net.eval()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float().cpu()).softmax(-1)


def load(path: Path | str = DEFAULT_OUT) -> ThirdClassifier:
    net = mlp()
    net.load_state_dict(torch.load(path, map_location="cpu"))
    return ThirdClassifier(net)


def shift(x: torch.Tensor, g: torch.Generator, r: int = 2) -> torch.Tensor:
    """Each image moved by a random (dy, dx) ∈ [−r, r]², the border filled with background (−1)."""
    pad = nn.functional.pad(x, (r, r, r, r), value=-1.0)
    d = torch.randint(0, 2 * r + 1, (2,), generator=g).tolist()
    return pad[..., d[0]:d[0] + 28, d[1]:d[1] + 28]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = read_idx("train")
    xt, yt = read_idx("t10k")
    net = mlp()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.epochs * (len(x) // 128))
    start = time.process_time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - 127, 128):
            b = perm[i:i + 128]
            loss = nn.functional.cross_entropy(net(shift(x[b], g)), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = (ThirdClassifier(net).predict(xt).argmax(-1) == yt).float().mean().item()
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f} (CPU {time.process_time() - start:.0f} s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)


if __name__ == "__main__":
    main()
