"""A class of 30 pressing the same button: their requests share one model pass.

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
