"""A class of 30 pressing the same button: their requests share one model pass — a whole counterfactual edit
(counterfactual), or one Denoise step at a time (denoiser: each request keeps its own sampler and frames).

Each request is prepared in its own thread (a bad upload fails alone), then waits on the compute thread's
Batcher: requests with the same model and settings that arrive while a pass runs go into the next pass
together, each row with its own image, target, seed and progress bar. A row's answer is the answer the
request gets alone (its own noise seed; the same sampler steps) — up to float rounding of a batched
convolution, which the 8-bit pictures do not show (tests/test_app.py)."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ..counterfactual import Counterfactual, counterfactual as edit
from ..protocols import Classifier, supports
from . import compute, models


class Row(NamedTuple):
    x: Tensor                          # (1, C, H, W) the prepared image
    target: Tensor                     # (num_classes,) class weights
    seed: int
    callback: Callable | None          # the caller's per-step callback, run in the caller's context


def _counterfactuals(key: tuple, batch: list[Row]) -> Counterfactual:
    model_name, options = key
    model = models.get(model_name)

    def on_step(step):
        for r in batch:
            if r.callback is not None:
                r.callback(step)
    return edit(model, torch.cat([r.x for r in batch]), torch.stack([r.target for r in batch]),
                seed=[r.seed for r in batch], callback=on_step, **dict(options))


_COUNTERFACTUALS = compute.Batcher(_counterfactuals, join=list)


def counterfactual(model_name: str, x: Tensor, target, *, seed: int = 0, callback=None, **options) -> Counterfactual:
    """jdx.counterfactual.counterfactual(models.get(model_name), x, target, seed=seed, callback=callback,
    **options) for one image x (1, C, H, W), in a shared pass with the concurrent requests that use the same
    model and options (t*, s, steps, …); callback gets the batch's steps (row i is this request's)."""
    if x.shape[0] != 1:
        raise ValueError(f"one image per request, got a batch of {x.shape[0]}")
    target = torch.as_tensor(target, dtype=torch.float32).reshape(-1)
    row = Row(x, target, int(seed), None if callback is None else compute.in_callers_context(callback))
    return _COUNTERFACTUALS((model_name, tuple(sorted(options.items()))), row)


class EpsRow(NamedTuple):
    x_t: Tensor                        # (1, C, H, W) one request's current sample
    t: int                             # its time step (rows of one pass may be at different steps)
    weights: Tensor | None             # (num_classes,) its guidance target; None: unguided


class EpsLogits(NamedTuple):
    eps_hat: Tensor                    # (B, C, H, W) ε̂(x_t, t), guided where the row asked for it
    logits: Tensor | None              # (B, num_classes) p(y | x_t, t) before softmax; None without a classifier


def _eps_logits(key: tuple, batch: list[EpsRow]) -> EpsLogits:
    """One U-Net pass for every waiting denoiser step. A joint model's forward gives ε̂ and the classifier's
    logits together; with guidance (Dhariwal & Nichol 2021, eq. 14)
    ε̂′ = ε̂ − s · √(1 − ᾱ_t) · ∇_{x_t} Σ_k w_k log p(k | x_t, t), the gradient taken through that same pass
    (the logits need only the encoder, so backward never enters the decoder)."""
    model_name, scale = key
    model = models.get(model_name)
    dev = next(model.parameters()).device
    x = torch.cat([r.x_t for r in batch]).to(dev)                          # (B, C, H, W)
    t = torch.tensor([r.t for r in batch], device=dev)                     # (B,)
    if not supports(model, Classifier):
        with torch.no_grad():
            return EpsLogits(model.eps(x, t), None)
    if scale == 0:
        with torch.no_grad():
            out = model(x, t)
        return EpsLogits(out.eps, out.logits)
    w = torch.stack([r.weights for r in batch]).to(dev)                    # (B, num_classes)
    eps, logits, grad = model.eps_logits_guidance(x, t, w)
    return EpsLogits(eps - scale * model.schedule.sigma(t, x.dim()) * grad, logits)


_EPS = compute.Batcher(_eps_logits, join=list)


def denoiser(model_name: str, weights=None, scale: float = 0.0, on_logits: Callable | None = None):
    """A sampler's eps_fn(x_t, t) for one request whose every step shares a U-Net pass with the steps of the
    concurrent requests of the same model and guidance scale (each row its own x_t, t and target), so the
    sampler, its noise generator and its frames stay the request's own. on_logits(t, logits (1, K)) hears the
    classifier on each x_t, from the same pass."""
    w = None if weights is None or not scale else torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
    key = (model_name, float(scale) if w is not None else 0.0)

    def eps_fn(x_t: Tensor, t: int) -> Tensor:
        if x_t.shape[0] != 1:
            raise ValueError(f"one image per request, got a batch of {x_t.shape[0]}")
        out = _EPS(key, EpsRow(x_t, int(t), w))
        if on_logits is not None and out.logits is not None:
            on_logits(int(t), out.logits)
        return out.eps_hat
    return eps_fn


def _clean_logits(model_name: str, x: Tensor) -> Tensor:
    model = models.get(model_name)
    with torch.no_grad():
        return model.classify(x.to(next(model.parameters()).device), 0).cpu()


_CLEAN_LOGITS = compute.Batcher(_clean_logits)


def predict_logits(model_name: str, x: Tensor) -> Tensor:
    """The classifier's logits (1, K) on a clean image x (1, C, H, W) (t = 0), in a shared pass."""
    return _CLEAN_LOGITS(model_name, x)
