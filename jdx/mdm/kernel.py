"""The transition kernel q(y_τ | x) of any linear diffusion, with no per-diffusion algebra.

For dy = A y dτ + √S dB (S = 2D) started at y₀ ~ N([x, 0], Σ₀):
    mean  m_τ = Φ_τ [x, 0],                Φ_τ = exp(τ A)
    cov   Σ_τ = Φ_τ Σ₀ Φ_τᵀ + X_τ Φ_τᵀ,    [[Φ_τ, X_τ], [0, ·]] = exp(τ [[A, S], [0, −Aᵀ]])
(Van Loan's block exponential: X_τ Φ_τᵀ = ∫₀^τ e^{A(τ−u)} S e^{Aᵀ(τ−u)} du, the noise the SDE added.)
The K×K algebra runs in float64 — the data coordinate's variance of CLD and ALDA grows like τ³ and τ⁵,
far below float32's resolution near τ = 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .diffusions import LinearDiffusion


def propagator(diffusion: LinearDiffusion, tau: Tensor) -> tuple[Tensor, Tensor]:
    """From a known state, over a span τ (B,): Φ = exp(τA) and the added noise's covariance X Φᵀ, both
    (B, K, K), float64 and differentiable (the learned Q, D get gradients)."""
    A, S = diffusion.A().double(), 2 * diffusion.D().double()
    K = A.shape[0]
    M = torch.cat([torch.cat([A, S], 1), torch.cat([torch.zeros_like(A), -A.T], 1)], 0)   # (2K, 2K)
    E = torch.linalg.matrix_exp(tau.double()[:, None, None] * M)
    Phi, X = E[:, :K, :K], E[:, :K, K:]
    N = X @ Phi.transpose(1, 2)
    return Phi, 0.5 * (N + N.transpose(1, 2))


def transition(diffusion: LinearDiffusion, tau: Tensor) -> tuple[Tensor, Tensor]:
    """q(y_τ | x) from τ = 0: Φ (B, K, K) and Σ_τ = Φ Σ₀ Φᵀ + X Φᵀ (B, K, K)."""
    Phi, N = propagator(diffusion, tau)
    return Phi, Phi @ diffusion.Sigma0().double() @ Phi.transpose(1, 2) + N


def cholesky(Sigma: Tensor) -> Tensor:
    """L with L Lᵀ = Σ; a jitter far below any variance that matters keeps near-singular Σ (τ → 0) factorable."""
    eye = torch.eye(Sigma.shape[-1], dtype=Sigma.dtype, device=Sigma.device)
    return torch.linalg.cholesky(Sigma + 1e-12 * eye)


def apply(M: Tensor, y: Tensor) -> Tensor:
    """Multiply every data value's K-vector by M: M (K, K) or (B, K, K), y (B, K, …) → (B, K, …)."""
    flat = y.flatten(2)                                                   # (B, K, d)
    M = M.to(flat)                                                        # the K×K algebra may sit elsewhere
    out = (M @ flat) if M.dim() == 3 else torch.einsum("kl,bld->bkd", M, flat)
    return out.view_as(y)


def mean(Phi: Tensor, x: Tensor) -> Tensor:
    """m_τ = Φ_τ [x, 0, …, 0] = Φ_τ[:, :, 0] x: x (B, …) → (B, K, …)."""
    coef = Phi[:, :, 0].to(x)                                        # (B, K)
    return coef.view(*coef.shape, *[1] * (x.dim() - 1)) * x[:, None]


def perturb(diffusion: LinearDiffusion, x: Tensor, tau: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """y_τ = m_τ + L_τ ε ~ q(y_τ | x); returns (y_τ, L_τ in float64)."""
    Phi, Sigma = transition(diffusion, tau)
    L = cholesky(Sigma)
    return mean(Phi, x) + apply(L, eps), L


def gaussian_eps(diffusion: LinearDiffusion, tau: Tensor, var: float) -> Tensor:
    """The exact noise prediction if every data value were N(0, var): y_τ is then N(0, C_τ) with
    C_τ = Σ_τ + var·Φ_τ[:, 0] Φ_τ[:, 0]ᵀ, so E[ε | y_τ] = L_τᵀ C_τ⁻¹ y_τ. Returns the (B, K, K) matrix
    L_τᵀ C_τ⁻¹ (float64) for τ (B,); one kernel when every τ is equal (a sampler's step)."""
    one = bool((tau == tau[0]).all())
    Phi, Sigma = transition(diffusion, tau[:1] if one else tau)
    c = Phi[:, :, :1]
    G = cholesky(Sigma).transpose(1, 2) @ torch.linalg.inv(Sigma + var * c @ c.transpose(1, 2))
    return G.expand(len(tau), -1, -1) if one else G
