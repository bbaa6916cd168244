"""Samplers: pure functions of a noise predictor eps_fn(x_t, t) -> ε̂, one signature, a callback.

Every sampler walks a decreasing list of times ts = [t*, …, 0] from a given x_{t*}, so the same
function draws from pure noise (t* = T) or edits a real image noised to t* (counterfactuals).
Guidance is not a sampler option: wrap eps_fn (see jdx.guidance).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from .diffusion import Schedule

EpsFn = Callable[[Tensor, int], Tensor]


class Step(NamedTuple):
    """One reverse step, as an explainer shows it."""
    t: int          # the time the step started from
    x_t: Tensor     # the sample at t
    eps_hat: Tensor  # ε̂(x_t, t), guided if eps_fn was
    x0_hat: Tensor  # the model's current guess of the clean image
    x_next: Tensor  # the sample at the next (smaller) time


def timesteps(t_start: int, n_steps: int) -> list[int]:
    """n_steps + 1 evenly spaced integer times from t_start down to 0 (duplicates dropped)."""
    if t_start < 1:
        raise ValueError(f"t_start must be ≥ 1, got {t_start}")
    n_steps = max(1, min(n_steps, t_start))
    ts = torch.linspace(t_start, 0, n_steps + 1).round().long().tolist()
    return sorted(set(ts), reverse=True)


def _x0_hat(schedule: Schedule, x: Tensor, t: int, eps: Tensor, clip: bool) -> Tensor:
    x0 = schedule.x0_from_eps(x, t, eps)
    # Data live in [−1, 1]; clipping x̂₀ is the DDPM/DDIM reference practice and keeps few-step samplers stable.
    return x0.clamp(-1, 1) if clip else x0


@torch.no_grad()
def ddim(eps_fn: EpsFn, x: Tensor, ts: Sequence[int], schedule: Schedule, *, eta: float = 0.0,
         clip: bool = True, generator: torch.Generator | None = None,
         callback: Callable[[Step], None] | None = None) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12): x_s = √ᾱ_s x̂₀ + √(1 − ᾱ_s − σ²) ε̂ + σ z,
    σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s). η = 0 is deterministic."""
    for t, s in zip(ts[:-1], ts[1:]):
        eps = eps_fn(x, t)
        x0 = _x0_hat(schedule, x, t, eps, clip)
        if clip:  # re-derive ε̂ from the clipped x̂₀ so that the two stay consistent
            eps = schedule.eps_from_x0(x, t, x0)
        a_t, a_s = schedule.alpha_bar[t], schedule.alpha_bar[s]
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()
        x_next = a_s.sqrt() * x0 + (1 - a_s - sigma ** 2).clamp(min=0).sqrt() * eps
        if eta > 0 and s > 0:
            x_next = x_next + sigma * _randn_like(x, generator)
        if callback is not None:
            callback(Step(t, x, eps, x0, x_next))
        x = x_next
    return x


@torch.no_grad()
def ddpm(eps_fn: EpsFn, x: Tensor, ts: Sequence[int], schedule: Schedule, *, clip: bool = True,
         generator: torch.Generator | None = None, callback: Callable[[Step], None] | None = None) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Alg. 2): x_s ~ q(x_s | x_t, x̂₀), the posterior
    with x₀ replaced by the model's x̂₀; skipped steps use the posterior between t and s."""
    for t, s in zip(ts[:-1], ts[1:]):
        eps = eps_fn(x, t)
        x0 = _x0_hat(schedule, x, t, eps, clip)
        mean, variance = schedule.posterior(x0, x, t, s)
        x_next = mean + variance.sqrt() * _randn_like(x, generator) if s > 0 else mean
        if callback is not None:
            callback(Step(t, x, eps, x0, x_next))
        x = x_next
    return x


SAMPLERS = {"ddim": ddim, "ddpm": ddpm}


def sample(name: str, eps_fn: EpsFn, x: Tensor, ts: Sequence[int], schedule: Schedule, *, eta: float = 0.0,
           generator: torch.Generator | None = None, callback: Callable[[Step], None] | None = None) -> Tensor:
    """Run the sampler `name` over ts; eta only concerns DDIM (DDPM's noise is fixed by the posterior)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    kwargs = {"eta": eta} if name == "ddim" else {}
    return SAMPLERS[name](eps_fn, x, ts, schedule, generator=generator, callback=callback, **kwargs)


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    # Seeded draws come from a CPU generator so that a seed gives the same trajectory on any device.
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def recorder(record: bool, callback: Callable[[Step], None] | None = None) -> tuple[list[Step], Callable[[Step], None]]:
    """A callback that keeps every step on the CPU (if record) and forwards it to `callback`."""
    steps: list[Step] = []

    def on_step(step: Step) -> None:
        if record:
            steps.append(Step(step.t, *(v.detach().cpu() for v in step[1:])))
        if callback is not None:
            callback(step)
    return steps, on_step
