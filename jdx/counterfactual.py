"""Visual counterfactual explanations: *what would have to change for the classifier to call x a …?*

Six methods, one signature (`counterfactual(model, x, target, method=…)`), all steered by the joint model's
own classifier toward a target class or class mixture w:
  sdedit          noise x to t*, walk back with the noisy classifier's gradient (joint-diffusion paper §VCE);
  dime            the same walk guided by the clean classifier on x̂₀ plus λ‖x̂₀ − x‖₁ (DiME, Jeanneret et al.
                  ACCV 2022), which keeps the edit close to x;
  ace             a dime edit, then a mask of where it changed (threshold + dilation) and a RePaint redo in which
                  everything outside the mask is the forward-noised original at every step (ACE, CVPR 2023);
  ddim-inversion  encode x deterministically to t* (DDIM run forward), decode with guidance: scale 0 returns x;
  adaptive        dime on a ladder of growing budgets (LADDER: multiples of t*, s and λ): each image stops at
                  the first rung whose result the joint model itself accepts robustly — the target's probability
                  averaged over noisy copies at ACCEPT_T ≥ ACCEPT_P — so easy edits stay small and hard ones
                  get more; images never accepted keep the last rung. Only the rows still pending run a rung;
  best-of         CANDIDATES dime edits of each image from different starting noise, run as one batch; each image
                  keeps the smallest edit among the candidates the joint classifier holds at the target on every
                  shifted and mirrored copy (held_probability ≥ HOLD_P), and when it holds none, the candidate whose
                  joint-model features lie nearest real training images of the target
                  (jdx.counterfactual_references.target_distance) — the joint model's own judges, never the label.
The pieces live in jdx.counterfactual_methods; the defaults (chosen by bench/counterfactuals.py) are DEFAULT.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from .protocols import Classifier, require

from .counterfactual_methods import (GUIDES, change_mask, ddim_invert, guided_eps_fn, held_probability,
                                     repaint_ddim, robust_target_probability)
from .counterfactual_references import target_distance
from .guidance import mixture_weights
from .samplers import Step, ddim, recorder, timesteps

METHODS = ("sdedit", "dime", "ace", "ddim-inversion", "adaptive", "best-of")


@dataclass(frozen=True)
class Settings:
    method: str = "dime"
    t_star: int = 150         # how much may change: the noise level the edit starts from (of T = 500)
    scale: float = 200.0      # s: how hard the classifier pulls toward the target
    lam: float = 1.0          # λ: how hard ‖x̂₀ − x‖₁ keeps the edit close to the input ("keep close")
    steps: int = 10           # DDIM steps from t* to 0 (per pass; ace and ddim-inversion run two passes)
    guide: str = "x_t"        # where the classifier's gradient is taken (see jdx.counterfactual_methods)


# The defaults of the library, the CLI and the app, per method (bench/counterfactuals.py, README).
PER_METHOD = {
    "sdedit": Settings("sdedit", 150, 200.0, 0.0, 10, "x_t"),
    "dime": Settings("dime", 300, 400.0, 1.5, 10, "x_t"),
    "ace": Settings("ace", 150, 200.0, 0.0, 10, "x_t"),
    "ddim-inversion": Settings("ddim-inversion", 100, 200.0, 0.0, 10, "x_t"),
    "adaptive": Settings("adaptive", 300, 400.0, 1.5, 10, "x_t"),     # t*, s, λ: the first rung's
    "best-of": Settings("best-of", 250, 400.0, 1.5, 10, "shifted"),   # each candidate's
}
# Session 9: best-of's candidates take the classifier's gradient over shifted and mirrored copies ("shifted").
# Session 12: t* 250, λ 1.5 and the held-then-smallest choice — on the dev split, the best validity of two
# candidates among the settings whose mean L1 stayed ≤ 0.10 (README "Counterfactuals").
DEFAULT = PER_METHOD["best-of"]
# adaptive: the rungs as multiples (of t*, s, λ), smallest budget first, and the joint model's acceptance test
# (chosen on a dev split of 160 other test images, runs never on the benchmark's: bench/counterfactuals.py).
LADDER = ((1.0, 1.0, 1.0), (1.0, 1.5, 4 / 3))   # (300, 400, 1.5), then a harder pull (300, 600, 2)
ACCEPT_T = (100,)       # noise levels (of T = 500) of the noisy copies the joint classifier judges the edit on …
ACCEPT_DRAWS = 3        # … this many noise draws at each …
ACCEPT_P = 0.6          # … and it accepts when the mean target probability reaches this
T_STAR, SCALE = DEFAULT.t_star, DEFAULT.scale
HOLD_P = 0.9            # best-of keeps the smallest of the candidates held at ≥ this on every shifted copy
CANDIDATES = 2          # best-of: dime edits per image; candidate m of row i starts from seed_i + m · SEED_STEP.
                        # Two since session 9: with the shifted guide, 4 were no better on the dev split
                        # (90.0 % / L1 0.103 vs 90.6 % / 0.105) at twice the time (the app's edit took 2.0 s,
                        # over its 2-s target). On the 500 test images 4 were better: 89.2 % vs 85.6 % (README)
SEED_STEP = 100_003
ACE_THRESHOLD = 0.1     # ACE mask: pixels the first edit changed by more than this (in [0, 1] units) …
ACE_DILATION = 1        # … grown by this many pixels


class Counterfactual(NamedTuple):
    x: Tensor                 # (B, C, H, W) the original in [−1, 1]
    x_cf: Tensor              # (B, C, H, W) the counterfactual
    probs_before: Tensor      # (B, num_classes) p(y | x) at t = 0
    probs_after: Tensor       # (B, num_classes) p(y | x_cf) at t = 0
    steps: list[Step]         # the edit's trajectory (empty unless record=True)
    mask: Tensor | None = None  # (B, 1, H, W) the region ACE may change (None for other methods)
    rung: Tensor | None = None  # (B,) adaptive: the ladder rung each image stopped at (−1: none accepted);
                                #      best-of: the candidate each image kept
    held: Tensor | None = None  # (B,) best-of: whether the kept candidate was held (else: the most typical)

    @property
    def l1(self) -> Tensor:
        """Mean absolute pixel change per image, in [0, 1] pixel units (images span 2 in model units)."""
        return (self.x_cf - self.x).abs().flatten(1).mean(1) / 2

    @property
    def l2(self) -> Tensor:
        """Root-mean-square pixel change per image, in [0, 1] pixel units."""
        return ((self.x_cf - self.x) / 2).pow(2).flatten(1).mean(1).sqrt()


def target_weights(target: Sequence[float] | Tensor, batch: int, num_classes: int) -> Tensor:
    """Class weights (C,) or (B, C) → (B, C) rows on the simplex."""
    w = torch.as_tensor(target, dtype=torch.float32)
    if w.dim() == 2:
        if w.shape != (batch, num_classes) or (w < 0).any() or (w.sum(-1) <= 0).any():
            raise ValueError(f"expected ({batch}, {num_classes}) non-negative class weights, got {tuple(w.shape)}")
        return w / w.sum(-1, keepdim=True)
    return mixture_weights(w, num_classes).expand(batch, num_classes)


def counterfactual(model: nn.Module, x: Tensor, target: Sequence[float] | Tensor, *, method: str = DEFAULT.method,
                   t_star: int | None = None, scale: float | None = None, lam: float | None = None,
                   steps: int | None = None, guide: str | None = None, seed: int | Sequence[int] = 0, record: bool = False,
                   callback: Callable[[Step], None] | None = None) -> Counterfactual:
    """x: (B, C, H, W) in [−1, 1]; target: class weights (C,) or (B, C) — one-hot for a single class.
    Settings left None take the method's default (PER_METHOD).
    seed: one for the batch, or (B,) one per row (the app batches users' requests: a row's starting noise
    then equals the same call on x[i:i+1] with seed[i])."""
    require(model, Classifier, "a counterfactual (its classifier steers the edit)")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    d = PER_METHOD[method]
    t_star = d.t_star if t_star is None else int(t_star)
    scale, lam = (d.scale if scale is None else float(scale)), (d.lam if lam is None else float(lam))
    steps, guide = (d.steps if steps is None else int(steps)), (guide or d.guide)
    if guide not in GUIDES:
        raise ValueError(f"unknown guide {guide!r}; choose from {', '.join(GUIDES)}")
    T = model.schedule.T
    if not 1 <= t_star <= T:
        raise ValueError(f"t* must be in 1…{T}, got {t_star}")
    device = next(model.parameters()).device
    x = x.to(device)
    w = target_weights(target, x.shape[0], model.num_classes).to(device)
    recorded, on_step = recorder(record, callback)
    mask = rung = held = None
    if method in ("adaptive", "best-of"):      # these run rows apart: one seed per row
        seeds = [seed + i for i in range(x.shape[0])] if isinstance(seed, int) else [int(v) for v in seed]
        if method == "adaptive":
            x_cf, rung = _adaptive(model, x, w, t_star, scale, lam, steps, guide, seeds, on_step)
        else:
            x_cf, rung, held = _best_of(model, x, w, t_star, scale, lam, steps, guide, seeds, on_step)
    else:
        seeds = [seed] if isinstance(seed, int) else [int(v) for v in seed]
        x_cf, mask = _edit(model, x, w, method, t_star, scale, lam, steps, guide, seeds, on_step)
    return Counterfactual(x, x_cf, model.predict(x), model.predict(x_cf), recorded, mask, rung, held)


def _edit(model: nn.Module, x: Tensor, w: Tensor, method: str, t_star: int, scale: float, lam: float, steps: int,
          guide: str, seeds: list[int], on_step: Callable[[Step], None]) -> tuple[Tensor, Tensor | None]:
    """One edit of every row of x (B, …) toward w (B, C) → (x_cf, the ACE mask or None)."""
    device = x.device
    g = torch.Generator().manual_seed(seeds[0])
    ts = timesteps(t_star, steps)
    eps_fn = guided_eps_fn(model, w, x, scale, lam, guide, generator=g)
    schedule = model.schedule
    mask = None
    if method == "ddim-inversion":
        x_t = ddim_invert(model.eps_fn, x, ts[::-1], schedule)          # x₀ → x_{t*}, deterministic
        return ddim(eps_fn, x_t, ts, schedule, clip=True, callback=on_step), None
    eps = (torch.randn(x.shape, generator=g) if len(seeds) == 1 else
           torch.cat([torch.randn((1, *x.shape[1:]), generator=torch.Generator().manual_seed(v)) for v in seeds]))
    x_t = schedule.noise_to(x, t_star, eps.to(device))                         # x_{t*} ~ q(x_{t*} | x₀)
    if method == "ace":
        first = ddim(eps_fn, x_t, ts, schedule)                     # a DiME edit: where would it change?
        mask = change_mask(x, first, ACE_THRESHOLD, ACE_DILATION)
        return repaint_ddim(eps_fn, x_t, ts, schedule, x, mask, generator=g, callback=on_step), mask
    return ddim(eps_fn, x_t, ts, schedule, callback=on_step), None


def _adaptive(model: nn.Module, x: Tensor, w: Tensor, t_star: int, scale: float, lam: float, steps: int, guide: str,
              seeds: list[int], on_step: Callable[[Step], None]) -> tuple[Tensor, Tensor]:
    """DiME on the LADDER of (t*, s, λ) budgets; each row keeps the first rung the joint model accepts robustly
    (robust_target_probability ≥ ACCEPT_P), or the last. Row i depends only on x[i], w[i] and seeds[i]."""
    T = model.schedule.T
    accept_t = [max(1, round(t * T / 500)) for t in ACCEPT_T]        # ACCEPT_T are of T = 500 (the shipped model)
    x_cf, rung = x.clone(), torch.full((x.shape[0],), -1, dtype=torch.long)
    pending = torch.arange(x.shape[0])
    for j, (f_t, f_s, f_lam) in enumerate(LADDER):
        rows = pending.tolist()

        def on_rows(step: Step, rows=rows) -> None:
            # The caller sees whole-batch steps: rows already accepted show their counterfactual, standing still.
            def full(v: Tensor) -> Tensor:
                out = x_cf.clone()
                out[rows] = v
                return out
            on_step(Step(step.t, *(full(v) if v.shape[0] == len(rows) else v for v in step[1:])))
        x_j, _ = _edit(model, x[rows], w[rows], "dime", max(1, round(f_t * t_star)), f_s * scale, f_lam * lam,
                       steps, guide, [seeds[i] for i in rows], on_rows)
        x_cf[rows] = x_j
        if j == len(LADDER) - 1:
            break
        p = robust_target_probability(model, x_j, w[rows], accept_t, ACCEPT_DRAWS, [seeds[i] for i in rows])
        ok = p >= ACCEPT_P
        rung[pending[ok]] = j
        pending = pending[~ok]
        if len(pending) == 0:
            break
    return x_cf, rung


def _best_of(model: nn.Module, x: Tensor, w: Tensor, t_star: int, scale: float, lam: float, steps: int, guide: str,
             seeds: list[int], on_step: Callable[[Step], None]) -> tuple[Tensor, Tensor, Tensor]:
    """CANDIDATES dime edits per row (one batch of CANDIDATES·B rows, candidate-major). Each row keeps the
    smallest edit (L1) among its candidates the joint classifier holds (held_probability ≥ HOLD_P); when none
    is held, the one nearest real training images of its target in the joint model's feature space.
    → (x_cf, the kept candidate, whether it was held). Row i depends only on x[i], w[i] and seeds[i]; the
    callback sees candidate 0's trajectory."""
    B, M = x.shape[0], CANDIDATES
    rows = [v + m * SEED_STEP for m in range(M) for v in seeds]
    x_m = x.repeat(M, *[1] * (x.dim() - 1))                              # (M·B, …)
    w_m = w.repeat(M, 1)

    def first_candidate(step: Step) -> None:
        on_step(Step(step.t, *(v[:B] if v.shape[0] == M * B else v for v in step[1:])))
    x_all, _ = _edit(model, x_m, w_m, "dime", t_star, scale, lam, steps, guide, rows, first_candidate)
    held = (held_probability(model, x_all, w_m) >= HOLD_P).view(M, B)
    size = (x_all - x_m).abs().flatten(1).mean(1).cpu().view(M, B)
    # The typicality judge costs an encoder pass: only when some row has no held candidate.
    distance = None if held.any(0).all() else target_distance(model, x_all, w_m).view(M, B)
    chosen = keep_candidate(held, size, distance)
    x_cf = x_all.view(M, B, *x.shape[1:])[chosen.to(x.device), torch.arange(B, device=x.device)]
    return x_cf, chosen, held[chosen, torch.arange(B)]


def keep_candidate(held: Tensor, size: Tensor, distance: Tensor | None) -> Tensor:
    """best-of's rule on (M candidates, B rows): the smallest held candidate; for a row with none held, the one
    at the least distance from its target's training features (`distance` may be None when every row has a held
    one). → (B,) indices. Session 12 (dev split, README): of two candidates, the smallest held one gave 91.3 %
    validity at L1 0.098 against 90.3 % at 0.106 for the most typical — typicality alone preferred larger edits."""
    smallest = size.masked_fill(~held, float("inf")).argmin(0)
    return smallest if distance is None else torch.where(held.any(0), smallest, distance.argmin(0))
