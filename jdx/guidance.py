"""Guidance as gradient functions (guided-diffusion's cond_fn) and wrappers returning a new eps_fn.

Class-mixture guidance: ∇_{x_t} Σ_k w_k log p(k | x_t, t), with weights w on the simplex (one-hot for a
single target). In ε-space the guided predictor is (Dhariwal & Nichol 2021, eq. 14; the joint-diffusion
follow-up code): ε̂′ = ε̂ − s · √(1 − ᾱ_t) · ∇_{x_t} log p(y | x_t).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from .diffusion import Schedule
from .samplers import EpsFn

LogitsFn = Callable[[Tensor, Tensor], Tensor]   # (x_t, t) -> logits (B, C)
GradFn = Callable[[Tensor, int], Tensor]        # (x_t, t) -> ∇_x (B, C, H, W)


def mixture_weights(weights: Sequence[float] | Tensor, num_classes: int) -> Tensor:
    """Validate and normalise class weights to sum 1 (the app's sliders need not sum to 1)."""
    w = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if w.numel() != num_classes:
        raise ValueError(f"expected {num_classes} class weights, got {w.numel()}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("class weights must be non-negative and not all zero")
    return w / w.sum()


def one_hot(k: int, num_classes: int) -> Tensor:
    if not 0 <= k < num_classes:
        raise ValueError(f"class index {k} out of range 0…{num_classes - 1}")
    return torch.nn.functional.one_hot(torch.tensor(k), num_classes).float()


def class_mixture_grad(logits_fn: LogitsFn, weights: Tensor) -> GradFn:
    """∇_{x_t} Σ_k w_k log p(k | x_t, t). weights: (C,) for the whole batch or (B, C) per sample."""
    def grad_fn(x: Tensor, t: int) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            log_p = torch.log_softmax(logits_fn(x, tt).float(), dim=-1)          # (B, C)
            w = weights.to(x.device).expand_as(log_p)
            # Sum over the batch: each sample's gradient depends only on its own log-probability.
            (grad,) = torch.autograd.grad((w * log_p).sum(), x)
        return grad
    return grad_fn


def guide(eps_hat, grad, scale: float, sigma):
    """Dhariwal & Nichol eq. 14: ε̂′ = ε̂ − s · σ_t · ∇ log p(y | x_t), σ_t = √(1 − ᾱ_t) (tensors or arrays)."""
    return eps_hat - scale * sigma * grad


def guided_eps(eps_fn: EpsFn, grad_fn: GradFn, scale: float, schedule: Schedule) -> EpsFn:
    """ε̂′(x_t, t) = ε̂(x_t, t) − s · √(1 − ᾱ_t) · ∇ log p(y | x_t): the score moves toward the target."""
    if scale == 0:
        return eps_fn

    def eps_guided(x: Tensor, t: int) -> Tensor:
        return guide(eps_fn(x, t), grad_fn(x, t), scale, schedule.sigma(t))
    return eps_guided


class GuidedFields(NamedTuple):
    """One guided step in both spaces, as the Gradients view shows it (same shapes as ε̂)."""
    eps_shift: Tensor       # − s·σ_t·∇log p(y | x_t): what guidance adds to ε̂
    eps_guided: Tensor      # ε̂′ = ε̂ − s·σ_t·∇log p(y | x_t)
    score_shift: Tensor     # s·∇log p(y | x_t): what guidance adds to the score
    score_guided: Tensor    # ∇log p_t(x_t) + s·∇log p(y | x_t) = −ε̂′/σ_t


def guided_fields(eps_hat, score, grad, scale: float, sigma: float) -> GuidedFields:
    """ε̂ (predicted noise), the score −ε̂/σ_t and the classifier gradient ∇log p(y | x_t) → their guided forms."""
    return GuidedFields(-scale * sigma * grad, guide(eps_hat, grad, scale, sigma), scale * grad, score + scale * grad)
