"""Sampling an MDM: Euler–Maruyama on the reverse SDE or Heun on the probability-flow ODE, in τ, on a
grid of s that is quadratic (dense near the data, where the score changes fastest; the authors' choice).

reverse SDE:  y ← y − (A y − S s_θ) Δτ + √(S Δτ) z            (Euler–Maruyama)
flow ODE:     y ← y − (A y − ½ S s_θ) Δτ                      (Heun: two evaluations per step)

`reverse` is the sampler proper: a pure function of a noise predictor eps_fn(y, τ), with a callback per step
(like jdx.samplers); `sample` draws from the model's stationary law and runs it.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from .diffusions import S_MIN, tau_of_s
from .kernel import apply, cholesky, propagator, transition


def s_grid(steps: int, s_min: float = S_MIN) -> Tensor:
    """steps + 1 times from s = 1 down to s_min, quadratically spaced."""
    r = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return s_min + (1 - s_min) * r ** 2


class SDEStep(NamedTuple):
    """One reverse step of a multivariate diffusion, as an explainer shows it."""
    i: int           # step index, 0 … steps − 1
    s: float         # the time the step started from (s = 1: the stationary law)
    y: Tensor        # (n, K, …) the state at s
    y_next: Tensor   # (n, K, …) the state at the next (smaller) s


EpsFn = Callable[[Tensor, Tensor], Tensor]      # ε̂(y_τ, τ) with τ a 0-d tensor or (n,)


def _drift(eps_fn: EpsFn, diffusion, y: Tensor, tau: Tensor, A: Tensor, S: Tensor, weight: float) -> Tensor:
    """A y − w S s_θ(y, τ) at one time τ (a 0-d tensor) for the whole batch: w = 1 for the reverse SDE, ½ for
    the probability-flow ODE. s_θ = −L_τ⁻ᵀ ε̂, with L_τ factored once per step."""
    _, Sigma = transition(diffusion, tau.reshape(1))
    L = cholesky(Sigma)[0]
    LT_inv = torch.linalg.solve_triangular(L.T, torch.eye(L.shape[0], dtype=L.dtype, device=L.device), upper=True)
    s = -apply(LT_inv, eps_fn(y, tau.expand(y.shape[0])).float())
    return apply(A, y) - weight * apply(S, s)


def _sqrt_psd(S: Tensor) -> Tensor:
    """√S for a positive semi-definite S (D may be singular: CLD puts no noise on the data value)."""
    lam, V = torch.linalg.eigh(S)
    return V @ torch.diag(lam.clamp_min(0).sqrt()) @ V.T


def prior_sample(diffusion, n: int, data_shape: tuple, generator: torch.Generator | None = None) -> Tensor:
    """y ~ the stationary law N(0, Σ∞) (diagonal): (n, K, *data_shape), on the CPU."""
    std_inf = diffusion.sigma_inf.sqrt().view(1, -1, *[1] * len(data_shape))
    return torch.randn((n, diffusion.K, *data_shape), generator=generator) * std_inf.cpu()


@torch.no_grad()
def reverse(eps_fn: EpsFn, diffusion, y: Tensor, s: Tensor, method: str = "em",
            generator: torch.Generator | None = None, callback: Callable[[SDEStep], None] | None = None) -> Tensor:
    """Integrate from y at s[0] down to s[-1]: Euler–Maruyama on the reverse SDE (em; no noise on the last
    step) or Heun on the probability-flow ODE (ode). A pure function of the noise predictor eps_fn(y, τ)."""
    if method not in ("em", "ode"):
        raise ValueError(f"method must be em or ode, not {method!r}")
    device = y.device
    A, S = diffusion.A().double(), 2 * diffusion.D().double()
    root_S = _sqrt_psd(S)
    tau = tau_of_s(s)
    steps = len(s) - 1
    for i in range(steps):
        t_hi, t_lo = tau[i].to(device), tau[i + 1].to(device)
        d_tau = float(tau[i] - tau[i + 1])
        if method == "em":
            y_next = y - _drift(eps_fn, diffusion, y, t_hi, A, S, 1.0) * d_tau
            if i < steps - 1:                       # no noise on the last step: return the mean
                y_next = y_next + apply(root_S, torch.randn(y.shape, generator=generator).to(device)) * d_tau ** 0.5
        else:                                       # Heun: the flow ODE is deterministic, so 2nd order pays
            f_hi = _drift(eps_fn, diffusion, y, t_hi, A, S, 0.5)
            f_lo = _drift(eps_fn, diffusion, y - f_hi * d_tau, t_lo, A, S, 0.5)
            y_next = y - 0.5 * (f_hi + f_lo) * d_tau
        if callback is not None:
            callback(SDEStep(i, float(s[i]), y, y_next))
        y = y_next
    return y


@torch.no_grad()
def sample(model, n: int, steps: int = 200, method: str = "em", generator: torch.Generator | None = None,
           keep: int = 0, device: torch.device | str = "cpu", progress=None) -> tuple[Tensor, list[tuple[float, Tensor]]]:
    """n samples y (n, K, …) at s_min from the model's stationary law; with keep > 0 also about `keep`
    (s, y_s) snapshots along the way, the first at s = 1. progress(i, steps) is called after each step."""
    if method not in ("em", "ode"):
        raise ValueError(f"method must be em or ode, not {method!r}")
    y = prior_sample(model.diffusion, n, model.data_shape, generator).to(device)
    s = s_grid(steps)
    every = max(1, steps // keep) if keep else 0
    trajectory = [(1.0, y.cpu().clone())] if keep else []

    def on_step(step: SDEStep) -> None:
        i = step.i
        if every and ((i + 1) % every == 0 or i == steps - 1):
            trajectory.append((float(s[i + 1]), step.y_next.cpu().clone()))
        if progress is not None:
            progress(i + 1, steps)
    y = reverse(model.eps, model.diffusion, y, s, method, generator, on_step)
    return y, trajectory


@torch.no_grad()
def forward_path(diffusion, x: Tensor, s_values: list[float], generator: torch.Generator | None = None) -> list[Tensor]:
    """The forward SDE simulated exactly from y₀ = [x, v₀ ~ q(v₀|x)] through increasing times s_values:
    each increment draws from the kernel of the span given the current state. x (n, …) → [y_s (n, K, …)],
    the first entry y₀."""
    K = diffusion.K
    device = diffusion.A().device  # where Q, D live; the noise is drawn on the CPU (the generator's) and moved
    v0 = torch.randn((x.shape[0], K - 1, *x.shape[1:]), generator=generator).to(device) * diffusion.config.init_aux_var ** 0.5
    y = torch.cat([x[:, None].float().to(device), v0], 1)
    out, prev = [y], 0.0
    for s in s_values:
        span = (tau_of_s(s) - tau_of_s(prev)).reshape(1).to(device)
        Phi, N = propagator(diffusion, span)
        y = apply(Phi[0], y) + apply(cholesky(N[0]), torch.randn(y.shape, generator=generator).to(device))
        out.append(y)
        prev = s
    return out


@torch.no_grad()
def sample_images(model, n: int, steps: int = 200, method: str = "em", generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> Tensor:
    """n images (n, C, H, W) in [−1, 1] from an image MDM: sample y, keep the data variable, undo the logit."""
    from .elbo import from_logit
    if not model.is_image:
        raise ValueError("a 2-D MDM draws points, not images (the app's Auxiliary variables view shows them)")
    y, _ = sample(model, n, steps, method, generator, device=device)
    return from_logit(y[:, 0])
