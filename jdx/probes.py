"""Diffusion features as representations (Mukhopadhyay et al. 2023): noise an image to x_t with fresh noise,
run the frozen U-Net once, read one block's feature map, average-pool it to p×p, and fit a linear probe.
The accuracy over (block, t) says where in the network, and at which noise level, the class is carried.

Features are cached on disk per (checkpoint, split, t, pool, images, seed), so a sweep that is stopped and
restarted, or re-run with other heads, does not recompute them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from .checkpoint import atomic_write


def block_features(model: nn.Module, x0: Tensor, t: int, pool: int, seed: int = 0) -> list[Tensor]:
    """Every block's feature map for x₀ noised to t (t = 0: the clean image), each average-pooled to
    pool×pool and flattened: a list over blocks of (B, C_block · pool²) tensors."""
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(x0.shape, generator=g).to(x0.device)
    x_t = model.schedule.noise_to(x0, t, eps) if t > 0 else x0
    tt = torch.full((x0.shape[0],), t, device=x0.device, dtype=torch.long)
    with torch.no_grad():
        feats = model.unet(x_t, tt if model.unet.config.time_input else None, return_features=True).features
    return [F.adaptive_avg_pool2d(f.float(), pool).flatten(1).cpu() for f in feats]


class FeatureCache:
    """Pooled features of one checkpoint on one image set, one safetensors file per t (all blocks)."""

    def __init__(self, model: nn.Module, images: Tensor, split: str, pool: int, seed: int, folder: Path):
        self.model, self.images, self.pool, self.seed = model, images, pool, seed
        weights = getattr(getattr(model, "info", None), "path", None)
        ident = json.dumps({"weights": _file_hash(weights), "split": split, "n": len(images), "pool": pool,
                            "seed": seed, "first": images[:4].sum().item()}, sort_keys=True)
        self.folder = Path(folder) / hashlib.sha256(ident.encode()).hexdigest()[:16]

    def path(self, t: int) -> Path:
        return self.folder / f"t{t}.safetensors"

    def get(self, t: int, batch: int = 250, progress=None) -> list[Tensor]:
        """Features at t: from the cache if present, else computed in batches and cached (atomically)."""
        if self.path(t).is_file():
            stored = load_file(self.path(t))
            return [stored[f"block{i}"].float() for i in range(len(stored))]
        device = next(self.model.parameters()).device
        parts: list[list[Tensor]] = []
        for i in range(0, len(self.images), batch):
            x0 = self.images[i:i + batch].to(device)
            parts.append(block_features(self.model, x0, t, self.pool, self.seed * 1_000_003 + i))
            if progress is not None:
                progress.update(len(x0))
        feats = [torch.cat([p[b] for p in parts]) for b in range(len(parts[0]))]
        # float16 halves the cache; a linear probe does not notice the rounding
        atomic_write(self.path(t), lambda tmp: save_file({f"block{i}": f.half() for i, f in enumerate(feats)}, tmp))
        return feats


def _file_hash(stem) -> str:
    if stem is None:
        return "unsaved"
    p = Path(str(stem) + ".safetensors")
    return f"{p.stat().st_size}-{p.stat().st_mtime_ns}" if p.is_file() else str(stem)


class Probe(NamedTuple):
    accuracy: float           # on the test features
    train_accuracy: float


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, weight_decay: float = 1e-4,
                 iters: int = 100) -> Probe:
    """Multinomial logistic regression on standardised features (full-batch L-BFGS, L2 penalty)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    k = int(max(train_y.max(), test_y.max())) + 1
    lin = nn.Linear(a.shape[1], k)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1, max_iter=iters, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(a), train_y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        return Probe((lin(b).argmax(1) == test_y).float().mean().item(), (lin(a).argmax(1) == train_y).float().mean().item())


class AttentionHead(nn.Module):
    """The paper's attention head, small: the pooled map's p² positions as tokens plus a CLS token, two
    transformer blocks, a linear classifier on CLS."""

    def __init__(self, channels: int, num_classes: int, width: int = 64, heads: int = 4):
        super().__init__()
        self.proj = nn.Linear(channels, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.out = nn.Linear(width, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:            # (B, p², C)
        h = torch.cat([self.cls.expand(len(tokens), -1, -1), self.proj(tokens)], 1)
        return self.out(self.blocks(h)[:, 0])


def attention_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, pool: int,
                    epochs: int = 15, seed: int = 0) -> Probe:
    """The attention head trained with AdamW on the pooled map's tokens (features reshaped to (B, p², C))."""
    torch.manual_seed(seed)
    tokens = lambda x: x.reshape(len(x), -1, pool * pool).transpose(1, 2)   # noqa: E731  (B, C·p²) → (B, p², C)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = tokens((train_x - mean) / std), tokens((test_x - mean) / std)
    head = AttentionHead(a.shape[2], int(train_y.max()) + 1)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.05)
    for _ in range(epochs):
        head.train()
        for idx in torch.randperm(len(a)).split(256):
            loss = F.cross_entropy(head(a[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    with torch.no_grad():
        acc = lambda x, y: torch.cat([head(c).argmax(1) for c in x.split(1000)]).eq(y).float().mean().item()  # noqa: E731
        return Probe(acc(b, test_y), acc(a, train_y))


class Sweep(NamedTuple):
    blocks: list[str]
    ts: list[int]
    accuracy: np.ndarray        # (len(blocks), len(ts))
    pixels: float               # the linear probe on raw pixels: the floor

    def best(self) -> tuple[str, int, float]:
        i, j = np.unravel_index(np.nanargmax(self.accuracy), self.accuracy.shape)
        return self.blocks[i], self.ts[j], float(self.accuracy[i, j])


def sweep(model: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], blocks: list[int],
          ts: list[int], pool: int = 2, head: str = "linear", cache: Path | None = None, seed: int = 0,
          progress: bool = True) -> Sweep:
    """Probe accuracy for every (block, t). train/test: (images in [−1, 1], labels)."""
    folder = Path(cache or Path.home() / ".cache" / "jdx" / "features")
    caches = [FeatureCache(model, x, split, pool, seed, folder) for split, x in (("train", train[0]), ("test", test[0]))]
    acc = np.full((len(blocks), len(ts)), np.nan)
    fit = linear_probe if head == "linear" else (lambda a, ya, b, yb: attention_probe(a, ya, b, yb, pool, seed=seed))
    total = sum(len(c.images) for c in caches) * len(ts)
    with tqdm(total=total, desc="features", disable=not progress, leave=False) as bar:
        for j, t in enumerate(ts):
            f_train, f_test = (c.get(t, progress=bar) for c in caches)
            for i, b in enumerate(blocks):
                acc[i, j] = fit(f_train[b], train[1], f_test[b], test[1]).accuracy
    pixels = linear_probe(train[0].flatten(1), train[1], test[0].flatten(1), test[1]).accuracy
    return Sweep([model.unet.block_names[b] for b in blocks], list(ts), acc, pixels)


def heat_map(result: Sweep, title: str = ""):
    """The (block × t) accuracy as a matplotlib Figure, the best cell outlined, the pixel floor in the title."""
    from matplotlib.figure import Figure
    acc = result.accuracy * 100
    fig = Figure(figsize=(1.9 + 0.37 * len(result.ts), 1.0 + 0.28 * len(result.blocks)), dpi=100)  # ≈ as shown
    fig.subplots_adjust(left=0.3, right=0.95, bottom=0.08, top=0.9)
    ax = fig.add_subplot()
    lo, hi = float(np.nanmin(acc)), float(np.nanmax(acc))
    im = ax.imshow(acc, cmap="viridis", aspect="auto", vmin=lo, vmax=hi)
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            ax.text(j, i, f"{acc[i, j]:.1f}", ha="center", va="center", fontsize=9,
                    color="w" if acc[i, j] < lo + 0.4 * (hi - lo) else "k")   # white on the dark cells
    i, j = np.unravel_index(np.nanargmax(acc), acc.shape)
    ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
        (j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2))
    ax.set_xticks(range(len(result.ts)), [str(t) for t in result.ts])
    ax.set_yticks(range(len(result.blocks)), result.blocks, fontsize=9)
    ax.set_xlabel("noise level t")
    ax.set_title(title + f"\n(linear probe on pixels: {result.pixels:.1%})", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.6, label="test accuracy (%)")
    return fig
