"""The DDPM variational bound in bits/dim (Ho et al. 2020, eq. 5), summed over *all* T steps:

  −log p(x₀) ≤ L_T + Σ_{t=2}^{T} L_{t−1} + L₀
  L_T     = KL(q(x_T | x₀) ‖ N(0, I))
  L_{t−1} = KL(q(x_{t−1} | x_t, x₀) ‖ p_θ(x_{t−1} | x_t)),  p_θ = N(μ̃(x̂₀(ε̂), x_t), σ_t² I)
  L₀      = −log p_θ(x₀ | x₁), a Gaussian N(x̂₀, β₁) discretised to the 8-bit bins of x₀

Each L_{t−1} is estimated with one x_t ~ q(x_t | x₀) per image (the usual estimate of the exact sum).
σ_t² is the model's choice, not learned here: both β̃_t (the posterior variance) and β_t give a valid bound,
so both totals are reported and the smaller is the model's bound. Data are discrete (no dequantisation):
the bound is directly on the 8-bit likelihood, comparable with CDM's dequantised bits/dim.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .diffusion import Schedule

HALF_BIN = 1 / 255          # x = p/127.5 − 1: neighbouring 8-bit values are 2/255 apart


def gaussian_kl(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) ‖ N(mean_p, var_p)) per element (nats)."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)


def discretised_gaussian_log_likelihood(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log ∫_bin N(u; mean, std²) du per element, for x on the 8-bit grid in [−1, 1]; the outermost bins
    extend to ±∞ (DDPM's decoder)."""
    upper = (x + HALF_BIN - mean) / std
    lower = (x - HALF_BIN - mean) / std
    log_cdf_upper = torch.special.log_ndtr(upper)           # log Φ(upper): the bin [−∞, x + ½] at x = −1
    log_sf_lower = torch.special.log_ndtr(-lower)           # log (1 − Φ(lower)): the bin [x − ½, ∞] at x = 1
    mid = torch.log((torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_sf_lower, mid))


class ELBO(NamedTuple):
    """Per image, in bits/dim. Pick the variance on the whole test set (min of the two means): both are bounds."""
    posterior_var: Tensor    # (N,) the bound with σ_t² = β̃_t
    beta: Tensor             # (N,) the bound with σ_t² = β_t
    prior: Tensor            # (N,) L_T alone
    decoder: Tensor          # (N,) L₀ alone


@torch.no_grad()
def ddpm_elbo(eps_fn, schedule: Schedule, x0: Tensor, generator: torch.Generator | None = None,
              progress=None) -> ELBO:
    """The bound for a batch x₀ (N, C, H, W) on the 8-bit grid. eps_fn(x_t, t) → ε̂: one call per t = 1…T."""
    T, d = schedule.T, x0[0].numel()
    alpha_bar, beta = schedule.alpha_bar.double(), schedule.beta.double()
    to_bits = 1 / (d * math.log(2))

    def noise(t: int) -> Tensor:
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        return schedule.noise_to(x0, t, eps)

    # L_T: q(x_T | x₀) = N(√ᾱ_T x₀, 1 − ᾱ_T) against the standard normal.
    a_T = alpha_bar[T].float()
    prior = gaussian_kl(a_T.sqrt() * x0, (1 - a_T).expand_as(x0), torch.zeros_like(x0), torch.ones_like(x0))
    prior = prior.flatten(1).sum(1)

    # L₀: the decoder at t = 1; μ_θ(x₁, 1) is x̂₀ itself (ᾱ₀ = 1), σ₁² = β₁.
    x1 = noise(1)
    x0_hat = schedule.x0_from_eps(x1, 1, eps_fn(x1, 1))
    decoder = -discretised_gaussian_log_likelihood(x0, x0_hat, beta[1].float().sqrt()).flatten(1).sum(1)

    kl_post = torch.zeros_like(prior)
    kl_beta = torch.zeros_like(prior)
    for t in range(2, T + 1):
        x_t = noise(t)
        x0_hat = schedule.x0_from_eps(x_t, t, eps_fn(x_t, t))
        q = schedule.posterior(x0, x_t, t)                     # the true reverse step
        p_mean = schedule.posterior(x0_hat, x_t, t).mean      # the model's
        var_q = q.variance.float().expand_as(x0)
        kl_post += gaussian_kl(q.mean, var_q, p_mean, var_q).flatten(1).sum(1)
        kl_beta += gaussian_kl(q.mean, var_q, p_mean, beta[t].float().expand_as(x0)).flatten(1).sum(1)
        if progress is not None:
            progress.update(1)
    return ELBO((prior + kl_post + decoder) * to_bits, (prior + kl_beta + decoder) * to_bits,
                prior * to_bits, decoder * to_bits)
