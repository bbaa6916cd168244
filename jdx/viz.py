"""Pictures of model tensors: grids, trajectories (x_t beside x̂₀), counterfactual strips, GIFs.
Pixels are enlarged with nearest neighbour so that 28×28 images stay crisp."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .data import to_uint8
from .samplers import Step


def grid(images: Tensor, nrow: int = 8, scale: int = 3, pad: int = 2, background: int = 40) -> Image.Image:
    """(N, C, H, W) in [−1, 1] → one PIL image, nrow images per row."""
    a = to_uint8(images)                                  # (N, H, W, C)
    n, h, w, c = a.shape
    rows = (n + nrow - 1) // nrow
    cols = min(n, nrow)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), background, np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = a[i]
    img = Image.fromarray(out[..., 0] if c == 1 else out, "L" if c == 1 else "RGB")
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def select_steps(steps: Sequence[Step], k: int) -> list[Step]:
    """k steps evenly spread over a trajectory, always keeping the first and the last."""
    if len(steps) <= k:
        return list(steps)
    idx = np.linspace(0, len(steps) - 1, k).round().astype(int)
    return [steps[i] for i in idx]


def trajectory_strip(steps: Sequence[Step], final: Tensor, k: int = 10, scale: int = 3, index: int = 0) -> Image.Image:
    """Two rows: x_t (top) and x̂₀ (bottom) at k times, the final sample at the right end of both rows."""
    chosen = select_steps(steps, k)
    top = [s.x_t[index] for s in chosen] + [final[index].cpu()]
    bottom = [s.x0_hat[index] for s in chosen] + [final[index].cpu()]
    return grid(torch.stack(top + bottom), nrow=len(top), scale=scale)


def trajectory_frames(steps: Sequence[Step], final: Tensor, scale: int = 6, index: int = 0) -> list[Image.Image]:
    """One frame per step: x_t | x̂₀ side by side with the time written under them."""
    ts = [s.t for s in steps] + [0]
    x_t = [s.x_t[index] for s in steps] + [final[index].cpu()]
    x0 = [s.x0_hat[index] for s in steps] + [final[index].cpu()]
    return pair_frames(ts, x_t, x0, scale)


CAPTION_PX = 14      # PIL's built-in bitmap font drew the caption ~8 px tall (walkthrough)


@lru_cache(maxsize=8)
def dejavu(px: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at px pixels: matplotlib ships it (no download, no system font needed)."""
    import matplotlib
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), px)


def pair_frames(ts: Sequence[int], x_t: Sequence[Tensor], x0: Sequence[Tensor], scale: int = 6) -> list[Image.Image]:
    """Frames of x_t | x̂₀ (each (C, H, W)) labelled with t; the last frame is the finished sample."""
    frames = []
    for i, (t, a, b) in enumerate(zip(ts, x_t, x0)):
        pair = grid(torch.stack([a, b]), nrow=2, scale=scale).convert("RGB")
        canvas = Image.new("RGB", (pair.width, pair.height + CAPTION_PX + 8), (40, 40, 40))
        canvas.paste(pair, (0, 0))
        label = "t = 0 (done)" if i == len(ts) - 1 else f"t = {t}"
        ImageDraw.Draw(canvas).text((4, pair.height + 3), f"{label}    left: x_t   right: x̂₀", fill=(230, 230, 230),
                                    font=dejavu(CAPTION_PX))
        frames.append(canvas)
    return frames


def save_gif(frames: Sequence[Image.Image], path: str | Path, ms_per_frame: int = 80, hold_last_ms: int = 1200) -> None:
    durations = [ms_per_frame] * (len(frames) - 1) + [hold_last_ms]
    frames[0].save(path, save_all=True, append_images=list(frames[1:]), duration=durations, loop=0)
