"""Generation: pure noise → images, optionally guided toward a class mixture by the joint model's own
classifier. Returns the images and, when asked, every step (x_t, x̂₀) for trajectories."""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from .guidance import class_mixture_grad, guided_eps, mixture_weights
from .protocols import Classifier, supports
from .samplers import Step, recorder, sample, timesteps


class Generation(NamedTuple):
    images: Tensor           # (N, C, H, W) in [−1, 1]
    steps: list[Step]        # every reverse step (empty unless record=True)


def guided_eps_fn(model: nn.Module, weights: Sequence[float] | Tensor | None, scale: float):
    """The model's eps_fn, guided by its shared classifier toward the class mixture `weights` if given."""
    if weights is None or scale == 0:
        return model.eps_fn
    if not supports(model, Classifier):
        raise ValueError(f"class guidance needs a joint model with a classifier; {getattr(model, 'kind', model)} has none")
    w = torch.as_tensor(weights, dtype=torch.float32)
    w = w / w.sum(-1, keepdim=True) if w.dim() == 2 else mixture_weights(w, model.num_classes)
    return guided_eps(model.eps_fn, class_mixture_grad(model.classify, w), scale, model.schedule)


def generate(model: nn.Module, n: int, *, weights=None, scale: float = 0.0, sampler: str = "ddim",
             steps: int = 50, eta: float = 0.0, seed: int = 0, x_T: Tensor | None = None, t_start: int | None = None,
             record: bool = False, callback: Callable[[Step], None] | None = None,
             device: torch.device | str | None = None) -> Generation:
    """Sample n images. weights: (C,) class mixture for all, or (n, C) one row per image."""
    device = device or next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    t_start = t_start or model.schedule.T
    if x_T is None:
        c = model.unet.config
        x_T = torch.randn(n, c.in_channels, c.image_size, c.image_size, generator=g)
    x = x_T.to(device)
    recorded, on_step = recorder(record, callback)

    eps_fn = guided_eps_fn(model, weights, scale)
    images = sample(sampler, eps_fn, x, timesteps(t_start, steps), model.schedule, eta=eta, generator=g,
                    callback=on_step)
    return Generation(images, recorded)


def generate_batched(model: nn.Module, n: int, batch: int = 256, labels: Tensor | None = None, progress=None,
                     seed: int = 0, **kwargs) -> Tensor:
    """generate() in batches (for FID); labels (n,) turn into one-hot guidance targets per image."""
    out = []
    for i in range(0, n, batch):
        m = min(batch, n - i)
        w = None
        if labels is not None:
            w = torch.nn.functional.one_hot(labels[i:i + m], model.num_classes).float()
        out.append(generate(model, m, weights=w, seed=seed + i, **kwargs).images.cpu())
        if progress is not None:
            progress.update(m)
    return torch.cat(out)
