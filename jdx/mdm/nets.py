"""Score networks. Both predict the noise ε̂(y_τ, s) of y_τ = m_τ + L_τ ε, all K variables at once; the
score is then −L_τ⁻ᵀ ε̂. Time enters as 1000·s (s ∈ [0, 1] the original time, not τ), on the same
sinusoidal embedding the rest of the library uses."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..toy import silu_mlp
from ..unet import UNet, UNetConfig, timestep_embedding


class ImageScoreNet(nn.Module):
    """The library's U-Net with the K variables of each of C channels stacked as K·C input channels."""

    def __init__(self, unet: UNetConfig):
        super().__init__()
        self.unet = UNet(unet)

    def forward(self, y: Tensor, s: Tensor) -> Tensor:          # y (B, K, C, H, W)
        return self.unet(y.flatten(1, 2), 1000 * s).out.view_as(y)


@dataclass
class MLPConfig:
    dim: int = 2
    hidden: int = 128
    depth: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


class PointScoreNet(nn.Module):
    """An MLP on the K·dim numbers of a 2-D point and its auxiliaries, plus the time embedding."""

    def __init__(self, config: MLPConfig, K: int):
        super().__init__()
        self.config = c = config
        self.net = nn.Sequential(*silu_mlp(K * c.dim + 32, c.hidden, c.depth), nn.Linear(c.hidden, K * c.dim))

    def forward(self, y: Tensor, s: Tensor) -> Tensor:          # y (B, K, dim)
        emb = timestep_embedding(1000 * s.float(), 32)
        return self.net(torch.cat([y.flatten(1), emb], 1)).view_as(y)
