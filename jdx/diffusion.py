"""The shared diffusion core: β schedules, q(x_t | x₀), the DDPM posterior, x̂₀ ↔ ε̂.

Time is indexed t ∈ {0, 1, …, T}: t = 0 is clean data (ᾱ₀ = 1) and t = 1…T are the paper's DDPM steps,
so "noise to t* = 200 of T = 500" and "the classifier at t = 0 sees x₀" read literally.
Every model of the library (joint, diffusion-only, CDM) shares this one module.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class ScheduleConfig:
    kind: str = "linear"      # "linear" (DDPM) or "cosine" (Nichol & Dhariwal 2021)
    T: int = 500              # number of noising steps; the joint-diffusion Fashion-MNIST recipe uses 500
    beta_start: float = 1e-4  # β₁ of the linear schedule
    beta_end: float = 0.02    # β_T of the linear schedule

    def to_dict(self) -> dict:
        return asdict(self)


def linear_betas(T: int, beta_start: float, beta_end: float) -> Tensor:
    """DDPM: β_t linear from β₁ to β_T (float64 for exact products)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008) -> Tensor:
    """Improved DDPM: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s) · π/2), β_t ≤ 0.999."""
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)


class Posterior(NamedTuple):
    mean: Tensor
    variance: Tensor


class Schedule(torch.nn.Module):
    """β_t, α_t = 1 − β_t, ᾱ_t = ∏_{s≤t} α_s as buffers of length T + 1 (index 0: clean, ᾱ₀ = 1).

    A module so that `.to(device)` moves it with the model it belongs to; it holds no weights.
    """

    def __init__(self, config: ScheduleConfig = ScheduleConfig()):
        super().__init__()
        self.config = config
        if config.kind == "linear":
            betas = linear_betas(config.T, config.beta_start, config.beta_end)
        elif config.kind == "cosine":
            betas = cosine_betas(config.T)
        else:
            raise ValueError(f"unknown schedule kind {config.kind!r}; expected 'linear' or 'cosine'")
        beta = torch.cat([torch.zeros(1, dtype=torch.float64), betas])  # β₀ = 0: t = 0 is x₀ itself
        alpha_bar = torch.cumprod(1 - beta, dim=0)
        # Kept in float64 on the CPU side of the math, stored float32: √(1 − ᾱ) near t = 0 needs the precision
        # only while the product is formed.
        self.register_buffer("beta", beta.float(), persistent=False)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    @property
    def T(self) -> int:
        return self.config.T

    def _at(self, values: Tensor, t: Tensor | int, ndim: int) -> Tensor:
        """values[t] shaped to broadcast against a (B, C, H, W) tensor."""
        t = torch.as_tensor(t, device=values.device).long()
        return values[t].reshape(t.shape + (1,) * (ndim - t.dim()))

    def alpha_bar_at(self, t: Tensor | int, ndim: int = 4) -> Tensor:
        return self._at(self.alpha_bar, t, ndim)

    def snr(self, t: Tensor | int) -> Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t)."""
        a = self.alpha_bar_at(t, ndim=0)
        return a / (1 - a)

    def sigma(self, t: Tensor | int, ndim: int = 0) -> Tensor:
        """σ_t = √(1 − ᾱ_t): the noise scale of x_t."""
        return (1 - self.alpha_bar_at(t, ndim)).sqrt()

    def score_from_eps(self, eps: Tensor, t: Tensor | int) -> Tensor:
        """∇ₓ log p_t(x_t) = −ε̂ / σ_t (the score an ε-prediction implies)."""
        return -eps / self.sigma(t, eps.dim())

    def noise_to(self, x0: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """q(x_t | x₀): x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε."""
        a = self.alpha_bar_at(t, x0.dim())
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def x0_from_eps(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."""
        a = self.alpha_bar_at(t, x_t.dim())
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def eps_from_x0(self, x_t: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """ε̂ = (x_t − √ᾱ_t x̂₀) / √(1 − ᾱ_t)."""
        a = self.alpha_bar_at(t, x_t.dim())
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def posterior(self, x0: Tensor, x_t: Tensor, t: int, s: int | None = None) -> Posterior:
        """q(x_s | x_t, x₀) for s < t (s = t − 1 by default: the DDPM posterior).

        With ᾱ_{t|s} = ᾱ_t / ᾱ_s and β_{t|s} = 1 − ᾱ_{t|s} (DDPM eq. 7, generalised to skipped steps):
          mean = √ᾱ_s β_{t|s} / (1 − ᾱ_t) · x₀ + √ᾱ_{t|s} (1 − ᾱ_s) / (1 − ᾱ_t) · x_t
          var  = (1 − ᾱ_s) / (1 − ᾱ_t) · β_{t|s}
        """
        s = t - 1 if s is None else s
        a_t, a_s = self.alpha_bar[t], self.alpha_bar[s]
        a_ts = a_t / a_s
        beta_ts = 1 - a_ts
        mean = a_s.sqrt() * beta_ts / (1 - a_t) * x0 + a_ts.sqrt() * (1 - a_s) / (1 - a_t) * x_t
        variance = (1 - a_s) / (1 - a_t) * beta_ts
        return Posterior(mean, variance)

    def sample_t(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        """t ~ Uniform{1, …, T} for the training loss."""
        return torch.randint(1, self.T + 1, (n,), device=device, generator=generator)
