"""Batch augmentation on the training device: random horizontal flip and a small random affine warp
(rotation, scale, shift) — a light version of the joint-diffusion authors' kornia pipeline. Used for the
classifier's batch only: augmenting the diffusion batch would teach the model to generate rotated clothes."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def augment(x: Tensor, generator: torch.Generator | None = None, max_degrees: float = 12.0,
            scale: tuple[float, float] = (0.9, 1.1), max_shift: float = 0.12, flip: bool = True) -> Tensor:
    """x: (B, C, H, W) in [−1, 1]; returns the same shape. Background outside the image is −1 (black)."""
    B = x.shape[0]

    def uniform(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(B, device=x.device, generator=generator)

    angle = uniform(-max_degrees, max_degrees) * math.pi / 180
    s = uniform(*scale)
    sign = torch.where(torch.rand(B, device=x.device, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(B, device=x.device)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    # theta maps output coordinates to input coordinates (affine_grid's convention), in [−1, 1] units.
    theta = torch.stack([torch.stack([cos * sign, -sin, uniform(-max_shift, max_shift)], -1),
                         torch.stack([sin * sign, cos, uniform(-max_shift, max_shift)], -1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with 0, which is mid-grey in [−1, 1]; shift so that padding is black.
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
