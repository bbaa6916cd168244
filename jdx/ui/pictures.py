"""Model tensors → crisp enlarged images (nearest neighbour: a 28×28 pixel stays a sharp square) and
signed maps (blue negative, red positive, white zero) with an explicit, shareable colour scale."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image
from torch import Tensor

from ..data import to_pil

DISPLAY = 224           # on-screen side of one image, in pixels


def big(x: Tensor, side: int = DISPLAY) -> Image.Image:
    """(C, H, W) in [−1, 1] → PIL image enlarged by an integer factor with nearest neighbour."""
    return to_pil(x, scale=max(1, side // x.shape[-1]))


def signed(m: Tensor | np.ndarray, vmax: float | None = None, side: int = DISPLAY) -> Image.Image:
    """A signed (H, W) map on a diverging colour scale [−vmax, vmax] (vmax: its own max |value| if None)."""
    a = np.asarray(m, dtype=np.float64)
    vmax = float(vmax if vmax is not None else np.abs(a).max()) or 1.0
    rgb = (colormaps["RdBu_r"](np.clip(a / vmax, -1, 1) * 0.5 + 0.5)[..., :3] * 255).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    k = max(1, side // img.width)
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


def channel_mean(x: Tensor) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) → (H, W): the map to draw for grey or colour images."""
    x = x.detach().float().cpu()
    return (x[0] if x.dim() == 4 else x).mean(0).numpy()
