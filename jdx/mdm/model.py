"""MDM: a linear diffusion and its score network, one checkpointable module for images or 2-D points, and
the training objective (the negative ELBO per data value; the learned Q, D train with the network)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..results import LossOutput
from ..unet import UNetConfig
from .diffusions import DiffusionConfig, LinearDiffusion, s_of_tau
from .elbo import bits_per_dim, dequantize_logit, elbo
from .kernel import apply, gaussian_eps
from .nets import ImageScoreNet, MLPConfig, PointScoreNet


@dataclass
class MDMConfig:
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    unet: UNetConfig | None = None        # images: in/out channels = K · C
    mlp: MLPConfig | None = None          # 2-D points
    mixed_var: float = 0.0                # > 0: the net corrects the exact ε̂ of N(0, mixed_var) data (MDM.eps)

    def to_dict(self) -> dict:
        out = {"diffusion": self.diffusion.to_dict(), "mixed_var": self.mixed_var}
        if self.unet is not None:
            out["unet"] = self.unet.to_dict()
        if self.mlp is not None:
            out["mlp"] = self.mlp.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "MDMConfig":
        return cls(DiffusionConfig(**d["diffusion"]), UNetConfig.from_dict(d["unet"]) if "unet" in d else None,
                   MLPConfig(**d["mlp"]) if "mlp" in d else None, d.get("mixed_var", 0.0))


class MDM(nn.Module):
    kind = "mdm"

    def __init__(self, config: MDMConfig):
        super().__init__()
        self.config = config
        self.diffusion = LinearDiffusion(config.diffusion)
        K = config.diffusion.K
        if (config.unet is None) == (config.mlp is None):
            raise ValueError("an MDM has either a U-Net (images) or an MLP (points)")
        if config.unet is not None:
            u = config.unet
            if u.in_channels != u.out_channels or u.in_channels % K:
                raise ValueError(f"the U-Net needs K·C in and out channels (K = {K}), got {u.in_channels}/{u.out_channels}")
            self.net = ImageScoreNet(u)
            self.data_shape = (u.in_channels // K, u.image_size, u.image_size)
        else:
            self.net = PointScoreNet(config.mlp, K)
            self.data_shape = (config.mlp.dim,)

    @property
    def is_image(self) -> bool:
        return self.config.unet is not None

    @property
    def num_classes(self) -> int:
        return 0

    def config_dict(self) -> dict:
        return self.config.to_dict()

    def eps(self, y: Tensor, tau: Tensor) -> Tensor:
        """ε̂(y_τ, τ): y (B, K, …), τ (B,) or a number. With mixed_var > 0 the "mixed score" of Dockhorn et al.
        (2022, §3.2): the net adds a correction to the exact ε̂ of Gaussian data, so it need not learn the
        Gaussian part itself. Without it CLD and MALDA, whose noise reaches the data only through the
        auxiliaries, stayed at a Gaussian fit's likelihood on the two moons (README "Auxiliary variables")."""
        tau = torch.as_tensor(tau, dtype=torch.float64, device=y.device).expand(y.shape[0])
        out = self.net(y, s_of_tau(tau).float())
        if self.config.mixed_var > 0:
            out = out + apply(gaussian_eps(self.diffusion, tau, self.config.mixed_var), y)
        return out

    def bits_per_dim(self, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images in [−1, 1] → one-sample upper bound on bits/dim, (B,)."""
        return bits_per_dim(self, x0, generator)

    def nll(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Points → one-sample upper bound on −log p(x) in nats, (B,)."""
        return -elbo(self, x, generator)


class MDMObjective(nn.Module):
    """Minimise −ELBO / d (nats per data value). Images are dequantised and logit-transformed first; the
    progress bar's figure is bits/dim."""

    def __init__(self, model: MDM):
        super().__init__()
        self.model = model

    def forward(self, x0: Tensor, x_lab: Tensor | None = None, y: Tensor | None = None) -> LossOutput:
        if self.model.is_image:
            x, log_det = dequantize_logit(x0)
        else:
            x, log_det = x0, torch.zeros(x0.shape[0], device=x0.device)
        d = x[0].numel()
        nelbo = -elbo(self.model, x)
        loss = nelbo.mean() / d
        bpd = ((nelbo - log_det) / (d * math.log(2)) + (8 if self.model.is_image else 0)).mean()
        zero = loss.new_zeros(())
        return LossOutput(loss, bpd.detach(), zero, zero, 0)
