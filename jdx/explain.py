"""What the joint model does with one image, as tensors an explainer can draw: captum attributions of the
shared classifier's raw logits (the sanity-checked methods are in jdx.attribution), the prediction as the
image is noised (robustness), and the three gradients that steer sampling at a noise level t (guidance,
ε̂, score)."""
from __future__ import annotations

import threading
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from .protocols import Classifier, supports
from .guidance import class_mixture_grad, one_hot

# captum's NoiseTunnel draws from torch's global generator; seeding it is only reproducible if no other
# request draws in between, so SmoothGrad calls take turns (each is a few dozen ms).
_GLOBAL_RNG = threading.Lock()


def _logits_fn(model: nn.Module, t: int):
    def f(x: Tensor) -> Tensor:
        return model.classify(x, t).float()
    return f


def integrated_gradients(model: nn.Module, x: Tensor, target: int, t: int = 0, n_steps: int = 32) -> Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) of the raw logit of `target` (not log-odds, not the
    probability), from the black image (the data's background, −1) to x. Returns (B, C, H, W); the
    attributions sum to logit(x) − logit(black). This baseline FAILS the model-randomisation check: x − black
    is 0 on every background pixel, so the map outlines the input whatever the weights (jdx.attribution)."""
    from captum.attr import IntegratedGradients
    ig = IntegratedGradients(_logits_fn(model, t))
    return ig.attribute(x, baselines=torch.full_like(x, -1.0), target=target, n_steps=n_steps,
                        internal_batch_size=n_steps).detach()


def smoothgrad(model: nn.Module, x: Tensor, target: int, t: int = 0, samples: int = 16, stdev: float = 0.15,
               seed: int = 0) -> Tensor:
    """SmoothGrad (Smilkov et al. 2017): |∇ₓ logit| averaged over x + N(0, σ²), σ = stdev · (max − min)."""
    from captum.attr import NoiseTunnel, Saliency
    tunnel = NoiseTunnel(Saliency(_logits_fn(model, t)))
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return tunnel.attribute(x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=samples,
                                stdevs=stdev * 2.0, target=target).detach()     # images span 2 units


# The app's attributions now come from jdx.attribution (methods measured with the randomisation check);
# these two stay for their tests and as the failing examples the check is taught with.
ATTRIBUTIONS = {"Integrated Gradients (black baseline)": integrated_gradients, "SmoothGrad (|gradient|)": smoothgrad}


@torch.no_grad()
def noise_robustness(model: nn.Module, x: Tensor, ts: Sequence[int], draws: int = 8, seed: int = 0) -> Tensor:
    """p(y | x_t, t) averaged over `draws` noise draws per t, for x (1, C, H, W): (len(ts), num_classes).
    One batched pass of the encoder for all (t, draw) pairs."""
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor(ts, dtype=torch.long).repeat_interleave(draws)
    eps = torch.randn((len(t),) + tuple(x.shape[1:]), generator=g).to(x.device)
    t = t.to(x.device)
    x_t = model.schedule.noise_to(x.expand(len(t), *x.shape[1:]), t, eps)
    probs = model.classify(x_t, t).float().softmax(-1)
    return probs.view(len(ts), draws, -1).mean(1).cpu()


class GradientViews(NamedTuple):
    x_t: Tensor          # (C, H, W) the input noised to t
    eps_hat: Tensor      # ε̂(x_t, t): the noise the network sees in x_t
    score: Tensor        # ∇ log p_t(x_t) ≈ −ε̂ / √(1 − ᾱ_t): where the density of noisy images rises
    guidance: Tensor     # ∇ log p(y | x_t, t): where the classifier's belief in y rises (zeros if no classifier)
    x0_hat: Tensor       # the one-step guess of the clean image


def gradient_views(model: nn.Module, x: Tensor, t: int, target: int | None, seed: int = 0) -> GradientViews:
    """The three fields that steer a reverse step at t, for x (1, C, H, W) in [−1, 1]."""
    T = model.schedule.T
    if not 0 <= t <= T:
        raise ValueError(f"t must be in 0…{T}, got {t}")
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(x.shape, generator=g).to(x.device)
    x_t = model.schedule.noise_to(x, t, eps)
    # ε̂ is undefined at t = 0 (nothing to remove); show the field at t = 1 there.
    t_eps = max(t, 1)
    with torch.no_grad():
        eps_hat = model.eps(x_t, torch.full((1,), t_eps, device=x.device)).float()
    sigma = model.schedule.sigma(t_eps)
    score = -eps_hat / sigma
    x0_hat = model.schedule.x0_from_eps(x_t, t_eps, eps_hat).clamp(-1, 1)
    if target is not None and supports(model, Classifier):
        grad = class_mixture_grad(model.classify, one_hot(target, model.num_classes))(x_t, t)
    else:
        grad = torch.zeros_like(x_t)
    return GradientViews(*(v[0].detach().cpu() for v in (x_t, eps_hat, score, grad, x0_hat)))
