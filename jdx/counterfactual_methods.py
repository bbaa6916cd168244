"""The pieces the counterfactual methods are built from: guided noise predictors (where the classifier's
gradient is taken), DDIM inversion, the ACE change mask and RePaint-style DDIM with a known region.

Guidance pulls ε̂ toward the target mixture w and, for DiME, toward the input x (Jeanneret et al. 2022):
  G(x̂₀) = s · Σ_k w_k log p(k | x̂₀, t = 0) − λ ‖x̂₀ − x‖₁
  ε̂′ = ε̂ − √(1 − ᾱ_t) · ∇_{x_t} G              (the classifier-guidance step of Dhariwal & Nichol, eq. 14)
Where the gradient is taken (GUIDES):
  "x_t"    ∇_{x_t} log p(y | x_t, t): the noisy classifier at the current t (plain SDEdit guidance);
  "x0_hat" ∇_{x̂₀} G / √ᾱ_t: the clean classifier on the predicted clean image, the U-Net's Jacobian
           ∂x̂₀/∂x_t approximated by I/√ᾱ_t (cheap: no backward pass through the U-Net);
  "unet"   the exact ∇_{x_t} G(x̂₀(x_t)), back-propagated through the U-Net (≈ 3× the cost);
  "noisy"  ∇ log p(y | x̃_t, t) averaged over K fresh noisings x̃_t = √ᾱ_t x̂₀ + √(1 − ᾱ_t) ε_k (plus λ's term);
  "shifted" ∇_{x_t} (1/K) Σ_k log p(y | τ_k(x_t), t) over K transformations τ_k of the image — the identity and
           random shifts by ≤ MAX_SHIFT pixels with random mirroring, the invariances the classifier was trained
           with (jdx.augment). A pixel pattern that fools the classifier at one position rarely does at another
           (expectation over transformation: Athalye et al., ICML 2018); evidence for the class survives a shift.
           So the averaged gradient keeps the class evidence and drops most adversarial directions.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .diffusion import Schedule
from . import guidance
from .samplers import EpsFn, Step

GUIDES = ("x_t", "x0_hat", "unet", "noisy", "shifted")
NOISY_DRAWS = 4     # K of the "noisy" guide: each draw costs one classifier pass
SHIFTS = 4          # K of the "shifted" guide (the identity and K − 1 random ones), one batched classifier pass
MAX_SHIFT = 2       # pixels; the classifier's training shifts reach 12 % of the side (3 px at 28 px)
SHIFT_SEED = 99     # the transformations' own stream: the same at every step of a batch and of a row alone
HOLD_SHIFTS = 8     # held_probability: the edit is judged on this many copies (the identity and random shifts) …
HOLD_SEED = 7       # … drawn from their own stream, the same for every row


Transform = tuple[int, int, bool]     # (rows down, columns right, mirror left-right)


def random_transforms(k: int, generator: torch.Generator) -> list[Transform]:
    """The identity and k − 1 random (dy, dx, mirror), |dy|, |dx| ≤ MAX_SHIFT."""
    out: list[Transform] = [(0, 0, False)]
    for _ in range(k - 1):
        dy, dx = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (2,), generator=generator).tolist()
        out.append((dy, dx, bool(torch.randint(0, 2, (1,), generator=generator))))
    return out


def transform(x: Tensor, tau: Transform) -> Tensor:
    """τ(x) for (B, C, H, W): a cyclic shift (the data's borders are background) and an optional mirror."""
    dy, dx, mirror = tau
    x = torch.roll(x, (dy, dx), (2, 3))
    return x.flip(3) if mirror else x


def _log_p_target(model: nn.Module, x: Tensor, t: int, w: Tensor) -> Tensor:
    """Σ_k w_k log p(k | x, t) per sample: (B,)."""
    log_p = torch.log_softmax(model.classify(x, t).float(), dim=-1)     # (B, C)
    return (w.to(x.device).expand_as(log_p) * log_p).sum(-1)


def guided_eps_fn(model: nn.Module, w: Tensor, x_ref: Tensor, scale: float, lam: float, guide: str,
                  generator: torch.Generator | None = None) -> EpsFn:
    """ε̂′(x_t, t) for target weights w (B, C) and the input x_ref (B, …) that λ keeps the edit close to."""
    if guide not in GUIDES:
        raise ValueError(f"unknown guide {guide!r}; choose from {', '.join(GUIDES)}")
    schedule: Schedule = model.schedule
    if scale == 0 and lam == 0:
        return model.eps_fn
    if guide == "shifted" and x_ref.dim() != 4:      # points (toy models) have no shifts: the plain noisy guide
        guide = "x_t"
    shifts = torch.Generator().manual_seed(SHIFT_SEED)

    def objective(x0: Tensor) -> Tensor:
        """s · Σ_k w_k log p(k | x̂₀) − λ ‖x̂₀ − x‖₁, summed over the batch (samples do not interact)."""
        close = (x0 - x_ref).abs().flatten(1).sum(1)
        return (scale * _log_p_target(model, x0, 0, w) - lam * close).sum()

    def _noisy_classifier_gradient(x_t: Tensor, x0: Tensor, t: int) -> Tensor:
        """s · ∇ Σ_k w_k log p(k | ·, t) where the guide takes it: at x_t, averaged over transformed copies of
        x_t ("shifted"), or averaged over re-noisings of x̂₀ ("noisy")."""
        if guide == "x_t":
            x_in = x_t.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(scale * _log_p_target(model, x_in, t, w).sum(), x_in)
            return grad
        if guide == "shifted":
            x_in = x_t.detach().requires_grad_(True)
            taus = random_transforms(SHIFTS, shifts)
            x_k = torch.cat([transform(x_in, tau) for tau in taus])             # (K·B, …), one pass
            log_p = _log_p_target(model, x_k, t, w.to(x_t.device).repeat(len(taus), 1))
            (grad,) = torch.autograd.grad(scale * log_p.sum() / len(taus), x_in)   # back through each τ_k
            return grad
        grad = torch.zeros_like(x_t)                      # "noisy": K re-noisings of x̂₀
        for _ in range(NOISY_DRAWS):
            e = torch.randn(x_t.shape, generator=generator).to(x_t.device)
            x_k = schedule.noise_to(x0.detach(), t, e).requires_grad_(True)
            (g_k,) = torch.autograd.grad(scale * _log_p_target(model, x_k, t, w).sum(), x_k)
            grad = grad + g_k / NOISY_DRAWS
        return grad

    def eps_guided(x_t: Tensor, t: int) -> Tensor:
        a = schedule.alpha_bar[t]
        with torch.enable_grad():
            if guide == "unet":
                x_t = x_t.detach().requires_grad_(True)
                eps = model.eps(x_t, t)
                x0 = schedule.x0_from_eps(x_t, t, eps).clamp(-1, 1)
                (grad,) = torch.autograd.grad(objective(x0), x_t)
                eps = eps.detach()
            else:
                with torch.no_grad():
                    eps = model.eps(x_t, t)
                x0 = schedule.x0_from_eps(x_t, t, eps).clamp(-1, 1).requires_grad_(True)
                if guide == "x0_hat":
                    (grad,) = torch.autograd.grad(objective(x0), x0)
                    grad = grad / a.sqrt()                       # ∂x̂₀/∂x_t ≈ I / √ᾱ_t
                else:
                    grad = _noisy_classifier_gradient(x_t, x0, t)
                    grad = grad - lam * torch.sign(x0.detach() - x_ref) / a.sqrt()   # λ's pull, ∂x̂₀/∂x_t ≈ I/√ᾱ_t
        return guidance.guide(eps, grad, 1.0, (1 - a).sqrt())   # eq. 14 with s and λ already inside grad
    return eps_guided


@torch.no_grad()
def ddim_invert(eps_fn: EpsFn, x0: Tensor, ts: Sequence[int], schedule: Schedule) -> Tensor:
    """DDIM run forward (Song et al. 2021; Dhariwal & Nichol App. F): for increasing times t < s,
    x_s = √ᾱ_s x̂₀(x_t) + √(1 − ᾱ_s) ε̂(x_t, t) — the deterministic encoding that decoding with η = 0 undoes."""
    x = x0
    for t, s in zip(ts[:-1], ts[1:]):
        eps = eps_fn(x, t)
        x0_hat = schedule.x0_from_eps(x, t, eps)
        x = schedule.alpha_bar[s].sqrt() * x0_hat + (1 - schedule.alpha_bar[s]).sqrt() * eps
    return x


def change_mask(x: Tensor, x_edit: Tensor, threshold: float, dilation: int) -> Tensor:
    """ACE's region: 1 where the first edit changed a pixel by more than `threshold` (in [0, 1] units,
    averaged over channels), grown by `dilation` pixels (a max-pool). (B, 1, H, W) for images."""
    if x.dim() != 4:                    # points (toy models): the whole point may move
        return torch.ones_like(x[:, :1])
    change = (x_edit - x).abs().mean(1, keepdim=True) / 2
    m = (change > threshold).float()
    if dilation > 0:
        m = F.max_pool2d(m, 2 * dilation + 1, stride=1, padding=dilation)
    return m


@torch.no_grad()
def repaint_ddim(eps_fn: EpsFn, x: Tensor, ts: Sequence[int], schedule: Schedule, known: Tensor, mask: Tensor,
                 generator: torch.Generator | None = None, callback: Callable[[Step], None] | None = None) -> Tensor:
    """DDIM (η = 0) where, after every step to s, the region outside `mask` is replaced by the forward-noised
    known image: x_s ← m ⊙ x_s + (1 − m) ⊙ q(x_s | known)  (RePaint, Lugmayr et al. 2022, eq. 8)."""
    for t, s in zip(ts[:-1], ts[1:]):
        eps = eps_fn(x, t)
        x0 = schedule.x0_from_eps(x, t, eps).clamp(-1, 1)
        eps = schedule.eps_from_x0(x, t, x0)
        x_free = schedule.alpha_bar[s].sqrt() * x0 + (1 - schedule.alpha_bar[s]).sqrt() * eps
        e = torch.randn(x.shape, generator=generator).to(x.device)
        x_known = schedule.noise_to(known, s, e) if s > 0 else known
        x_next = mask * x_free + (1 - mask) * x_known
        if callback is not None:
            callback(Step(t, x, eps, x0, x_next))
        x = x_next
    return x


def target_share(w: Tensor, p: Tensor) -> Tensor:
    """Σ_c w_c p_c / max_c w_c for target weights w and probabilities p (B, C): 1 when the classifier gives the
    mixture all it asks for (for one target class: its probability). (B,)"""
    return (w * p).sum(-1) / w.max(-1).values


@torch.no_grad()
def robust_target_probability(model: nn.Module, x: Tensor, w: Tensor, ts: Sequence[int], draws: int,
                              seeds: Sequence[int]) -> Tensor:
    """How firmly the joint classifier holds an edit for the target mixture w (B, C), judged on noisy copies:
    mean over t ∈ ts and `draws` noise draws of Σ_k w_k p(k | x̃_t, t) / max_k w_k, x̃_t ~ q(x_t | x). (B,)
    The noisy classifier is far less fooled by adversarial pixels than the clean one: noise at t drowns
    changes below its scale. Row i's noise comes from seeds[i] alone, so a row does not depend on its batch."""
    schedule: Schedule = model.schedule
    w = w.to(x.device)
    gens = [torch.Generator().manual_seed(int(v) + 7919) for v in seeds]          # not the edit's own noise
    total = torch.zeros(x.shape[0], device=x.device)
    for t in ts:
        for _ in range(draws):
            e = torch.cat([torch.randn((1, *x.shape[1:]), generator=g) for g in gens]).to(x.device)
            total += target_share(w, model.classify(schedule.noise_to(x, t, e), t).float().softmax(-1))
    return total / (len(ts) * draws)


@torch.no_grad()
def held_probability(model: nn.Module, x: Tensor, w: Tensor, k: int = HOLD_SHIFTS) -> Tensor:
    """How firmly the clean joint classifier holds x for the target mixture w (B, C) under the invariances it
    was trained with: min over k copies τ(x) (the identity and k − 1 random shifts by ≤ MAX_SHIFT px with
    random mirroring) of Σ_c w_c p(c | τ(x), 0) / max_c w_c. (B,) An adversarial pixel pattern fools the
    classifier at one position; a class change holds at every one. Points (toy models): the identity only."""
    if x.dim() == 4:          # all k copies in one classifier pass (this runs on every app counterfactual)
        copies = torch.cat([transform(x, tau) for tau in random_transforms(k, torch.Generator().manual_seed(HOLD_SEED))])
    else:
        copies, k = x, 1
    p = model.classify(copies, 0).float().softmax(-1)                                   # (k·B, C)
    return target_share(w.to(x.device).repeat(k, 1), p).view(k, -1).min(0).values.cpu()
