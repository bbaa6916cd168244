"""The MDM ELBO (Singhal et al. 2023, after Huang et al. 2021) in its denoising-score-matching form, and
bits/dim on dequantised, logit-transformed images.

For y₀ = [x, v₀], v₀ ~ q(v₀ | x), and the time-changed SDE dy = A y dτ + √S dB on τ ∈ [0, τ_T]:

  log p(x) ≥ E[log π(y_T)] − ∫₀^{τ_T} E[ ½‖√S (s_θ − ∇log q(y_τ|x))‖² − ½ tr(S Σ_τ⁻¹)·d − tr(A)·d ] dτ
             − E[log q(v₀ | x)]

(d data values; the second term is E ½‖√S ∇log q‖² written in closed form, the third ∇·f). With
y_τ = m_τ + L_τ ε and s_θ = −L_τ⁻ᵀ ε̂, the squared norm is (ε̂ − ε)ᵀ W (ε̂ − ε) per data value with
W = L⁻¹ S L⁻ᵀ, and tr(S Σ⁻¹) = tr W. Conditioning the kernel on x alone (v₀ folded into Σ₀) is exact
in expectation and has lower variance than conditioning on v₀ too.

τ is importance-sampled log-uniformly on [τ(s_lo), τ_T]: the VP-SDE's integrand grows like 1/τ near 0,
and a log-uniform τ makes each sample's weight τ·log(τ_T/τ_lo) cancel it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..dequantization import dequantize_unit
from .diffusions import tau_of_s
from .kernel import perturb, transition

ALPHA = 0.05        # logit transform x = logit(α + (1 − 2α) u): keeps black pixels near −3, not −14
S_LO = 1e-5         # the ELBO integral starts at s = 1e-5 (τ ≈ 1e-6); below, the integrand is bounded
                    # in expectation and the neglected piece is O(1e-6) nats


def dequantize_logit(x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Images in [−1, 1] (pixel/127.5 − 1) → (x in logit space, Σ log|dx/du| per image), with
    u = (pixel + U(0, 1)) / 256 uniform dequantisation (jdx.dequantization)."""
    u = dequantize_unit(x0, generator)
    p = ALPHA + (1 - 2 * ALPHA) * u
    x = torch.log(p) - torch.log1p(-p)
    log_det = (math.log(1 - 2 * ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
    return x, log_det


def from_logit(x: Tensor) -> Tensor:
    """Logit-space values → images in [−1, 1] (the inverse transform to pixel = 256u − ½, the centre of the
    dequantisation bin, then pixel/127.5 − 1, clipped)."""
    u = (torch.sigmoid(x) - ALPHA) / (1 - 2 * ALPHA)
    return ((256 * u - 0.5) / 127.5 - 1).clamp(-1, 1)


def prior_term(diffusion, x: Tensor) -> Tensor:
    """E_{q(y_T | x)} log π(y_T), π = N(0, Σ∞), in closed form; x (B, …) → (B,)."""
    tau_T = tau_of_s(1.0).to(x.device).reshape(1)
    Phi, Sigma = transition(diffusion, tau_T)
    var_inf = diffusion.sigma_inf.double()
    m = Phi[0, :, 0]                                                        # (K,)
    d = x[0].numel()
    x2 = x.double().flatten(1).pow(2).sum(1)                                # Σ_i x_i²
    const = d * (torch.log(2 * math.pi * var_inf).sum() + (torch.diagonal(Sigma[0]) / var_inf).sum())
    return (-0.5 * (const + x2 * (m.pow(2) / var_inf).sum())).float()


def v0_entropy(diffusion, d: int) -> float:
    """−E log q(v₀ | x) = the entropy of N(0, init_aux_var·I) over d·(K − 1) values."""
    K, var = diffusion.K, diffusion.config.init_aux_var
    return 0.5 * d * (K - 1) * (1 + math.log(2 * math.pi * var)) if K > 1 else 0.0


def elbo(model, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One-sample ELBO estimate of log p(x) in nats per example (B,). model: .diffusion and .eps(y, τ)."""
    diffusion = model.diffusion
    B, d, dev = x.shape[0], x[0].numel(), x.device
    tau_lo, tau_T = float(tau_of_s(S_LO)), float(tau_of_s(1.0))
    log_range = math.log(tau_T / tau_lo)
    u = torch.rand(B, generator=generator, device=dev, dtype=torch.float64)
    tau = tau_lo * torch.exp(u * log_range)                                # log-uniform τ
    eps = torch.randn((B, diffusion.K, *x.shape[1:]), generator=generator, device=dev)
    y, L = perturb(diffusion, x, tau, eps)
    eps_hat = model.eps(y, tau)
    S = 2 * diffusion.D().double()
    L_inv = torch.linalg.solve_triangular(L, torch.eye(L.shape[-1], dtype=L.dtype, device=dev), upper=False)
    W = L_inv @ S @ L_inv.transpose(1, 2)                                   # (B, K, K)
    err = (eps_hat.float() - eps).flatten(2)                                # (B, K, d)
    quad = torch.einsum("bkd,bkl,bld->b", err, W.float(), err)
    integrand = 0.5 * quad.double() - 0.5 * d * torch.diagonal(W, dim1=1, dim2=2).sum(1) \
        - d * torch.trace(diffusion.A().double())
    integral = integrand * tau * log_range                                  # ÷ p(τ) = 1 / (τ log(τ_T/τ_lo))
    return prior_term(diffusion, x) - integral.float() + v0_entropy(diffusion, d)


def bits_per_dim(model, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Upper bound on −log₂ P(pixels) / d for images x0 in [−1, 1]: the ELBO in logit space, the logit
    transform's Jacobian, and 8 bits for the uniform dequantisation of 256 levels; (B,)."""
    x, log_det = dequantize_logit(x0, generator)
    d = x[0].numel()
    return (-(elbo(model, x, generator) + log_det)) / (d * math.log(2)) + 8
