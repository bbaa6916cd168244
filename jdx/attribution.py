"""Attribution maps of the joint model's classifier that pass the model-randomisation sanity check
(Adebayo et al., NeurIPS 2018): a map that explains the *model* must change when the model's weights are
re-drawn. Every method returns a signed (B, H, W) map of the raw logit (not log-odds) of one class, at the
model's resolution; `sanity_check` measures the mean Spearman ρ of |map| between the trained model and
the model with its classifier head re-drawn, and with all its weights re-drawn.

Integrated Gradients from the black image (the data's background, −1) fails the check by construction:
(x − baseline) is zero on every background pixel, so |IG| outlines the input whatever the weights."""
from __future__ import annotations

import copy
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor, nn

Method = Callable[..., Tensor]      # method(model, x (B, C, H, W), target (B,), t=0, seed=0) → (B, H, W)


def _logits_fn(model: nn.Module, t: int):
    def f(x: Tensor) -> Tensor:
        return model.classify(x, t).float()
    return f


def _targets(target: Tensor | int, n: int, device) -> Tensor:
    return torch.as_tensor(target, device=device).long().expand(n).contiguous()


def _gradient(model: nn.Module, x: Tensor, target: Tensor, t: int | Tensor) -> Tensor:
    """∇ₓ logit_target(x, t) for a batch, (B, C, H, W)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model.classify(x, t).float()
        picked = logits.gather(1, target[:, None]).sum()
        (g,) = torch.autograd.grad(picked, x)
    return g


def expected_gradients(model: nn.Module, x: Tensor, target, t: int = 0, seed: int = 0, samples: int = 32,
                       stdev: float = 0.5) -> Tensor:
    """Expected gradients / GradientSHAP (Erion et al. 2021; Lundberg & Lee 2017): Integrated Gradients
    averaged over random baselines — here Gaussian noise N(0, stdev²) in [−1, 1] units — with one random
    point on each path: E_{x', α}[(x − x') ⊙ ∇f(x' + α(x − x'))]. Unlike a black baseline, the noise
    baselines differ from x on the background too, so the map is not forced to outline the object."""
    from captum.attr import GradientShap
    g = torch.Generator().manual_seed(seed)
    baselines = (torch.randn((samples,) + tuple(x.shape[1:]), generator=g) * stdev).to(x.device)
    # Captum draws the baselines and the points on the paths from NumPy's global generator, not torch's: seeding
    # torch alone gave a different map on every press of Classify (a walkthrough; ±0.2 one press, ±0.1 the next).
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            a = GradientShap(_logits_fn(model, t)).attribute(x, baselines=baselines, n_samples=samples,
                                                             target=_targets(target, len(x), x.device))
    finally:
        np.random.set_state(state)
    return a.detach().sum(1)


def noisy_gradient_x_input(model: nn.Module, x: Tensor, target, t: int = 0, seed: int = 0,
                           levels: Sequence[float] = (0.05, 0.1, 0.2, 0.3), draws: int = 4) -> Tensor:
    """Gradient × input averaged over noise levels (a diffusion SmoothGrad): for t in `levels` (fractions of
    T) and a few draws ε, the gradient of logit(x_t, t) w.r.t. the clean x through x_t = √ᾱ_t x + √(1−ᾱ_t) ε,
    times (x − x_bg) with x_bg the mean image grey 0 — signed, so colours show which way each pixel pushes."""
    g = torch.Generator().manual_seed(seed)
    T = model.schedule.T
    k = _targets(target, len(x), x.device)
    total = torch.zeros_like(x)
    for f in levels:
        t_ = max(1, int(round(f * T)))
        eps = torch.cat([torch.randn(x.shape, generator=g) for _ in range(draws)]).to(x.device)   # (draws·B, C, H, W)
        x_t = model.schedule.noise_to(x.repeat(draws, 1, 1, 1), t_, eps)
        grad = _gradient(model, x_t, k.repeat(draws), t_) * model.schedule.alpha_bar[t_].sqrt()
        total += grad.view(draws, *x.shape).sum(0)
    return (total / (len(levels) * draws) * x).sum(1)


def smoothgrad_signed(model: nn.Module, x: Tensor, target, t: int = 0, seed: int = 0, samples: int = 32,
                      stdev: float = 0.3) -> Tensor:
    """SmoothGrad without the absolute value (Smilkov et al. 2017): E_ε[∇ₓ logit(x + ε)], ε ~ N(0, σ²)."""
    g = torch.Generator().manual_seed(seed)
    k = _targets(target, len(x), x.device)
    eps = torch.cat([torch.randn(x.shape, generator=g) for _ in range(samples)]).to(x.device)  # (samples·B, C, H, W)
    grad = _gradient(model, x.repeat(samples, 1, 1, 1) + stdev * eps, k.repeat(samples), t)
    return grad.view(samples, *x.shape).mean(0).sum(1)


def occlusion(model: nn.Module, x: Tensor, target, t: int = 0, seed: int = 0, window: int = 4,
              stride: int = 2) -> Tensor:
    """Occlusion (Zeiler & Fergus 2014) through captum: the drop of the logit when a window is replaced
    by mid-grey (0), averaged over the windows covering each pixel."""
    from captum.attr import Occlusion
    C = x.shape[1]
    a = Occlusion(_logits_fn(model, t)).attribute(
        x, sliding_window_shapes=(C, window, window), strides=(C, stride, stride), baselines=0.0,
        target=_targets(target, len(x), x.device), perturbations_per_eval=64)
    return a.detach().sum(1)


def integrated_gradients_black(model: nn.Module, x: Tensor, target, t: int = 0, seed: int = 0,
                               n_steps: int = 32) -> Tensor:
    """Integrated Gradients from the black image (−1). Kept to show the failure: (x − black) = 0 on the
    background, so the map outlines the object whatever the weights."""
    from captum.attr import IntegratedGradients
    a = IntegratedGradients(_logits_fn(model, t)).attribute(
        x, baselines=torch.full_like(x, -1.0), target=_targets(target, len(x), x.device), n_steps=n_steps,
        internal_batch_size=n_steps * len(x))
    return a.detach().sum(1)


def counterfactual_difference(model: nn.Module, x: Tensor, target, t: int = 0, seed: int = 0) -> Tensor:
    """The diffusion-native explanation: x_cf − x, where x_cf is the visual counterfactual toward the
    runner-up class (jdx.counterfactual). Signed: where the image must brighten (+) or darken (−) to leave
    the explained class. `target` is the explained class; the edit aims at the best other class."""
    from .counterfactual import counterfactual
    with torch.no_grad():
        logits = model.classify(x, 0).float()
    k = _targets(target, len(x), x.device)
    logits = logits.scatter(1, k[:, None], float("-inf"))
    runner_up = torch.nn.functional.one_hot(logits.argmax(1), model.num_classes).float()
    T = model.schedule.T
    cf = counterfactual(model, x, runner_up, method="dime", t_star=max(1, int(0.3 * T)), scale=10.0, lam=1.0,
                        steps=10, seed=seed)   # pinned: the sanity figures in the README were measured so
    return (cf.x_cf - cf.x).sum(1).detach()


# Offered methods, default first. `passes` is filled from the measured table (README / assets/results).
METHODS: dict[str, Method] = {
    "expected gradients": expected_gradients,
    "noisy gradient × input": noisy_gradient_x_input,
    "SmoothGrad (signed)": smoothgrad_signed,
    "occlusion": occlusion,
    "counterfactual difference": counterfactual_difference,
    "Integrated Gradients (black baseline)": integrated_gradients_black,
}
DEFAULT = "expected gradients"


def attribute(model: nn.Module, x: Tensor, target: int | Tensor | None = None, method: str = DEFAULT,
              t: int = 0, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(maps (B, H, W) float32 signed, targets (B,)): the attribution of the raw logit of `target`
    (default: the predicted class) at noise level t."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")
    if target is None:
        with torch.no_grad():
            target = model.classify(x, t).argmax(1)
    k = _targets(target, len(x), x.device)
    return METHODS[method](model, x, k, t=t, seed=seed).float().cpu(), k.cpu()


# ---------- the model-randomisation check (Adebayo et al. 2018) -------------------------------------------

def redrawn(model: nn.Module, part: str, seed: int = 0) -> nn.Module:
    """A copy of model with the classifier head ("head") or every layer ("all") re-initialised."""
    if part not in ("head", "all"):
        raise ValueError(f"part must be 'head' or 'all', got {part!r}")
    m = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in (m.head if part == "head" else m).modules():
        if hasattr(module, "reset_parameters") and module is not m:
            module.reset_parameters()
    return m.eval()


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation per row of (B, N) tensors (ties broken by order; maps are continuous)."""
    ra = a.argsort(1).argsort(1).double()
    rb = b.argsort(1).argsort(1).double()
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


class SanityCheck(NamedTuple):
    method: str
    rho_head: float        # mean Spearman ρ of |map|: trained vs. head re-drawn
    rho_all: float         # … trained vs. all weights re-drawn
    images: int

    def passes(self, head_max: float = 0.5, all_max: float = 0.3) -> bool:
        return self.rho_head <= head_max and self.rho_all <= all_max


def sanity_check(model: nn.Module, x: Tensor, method: str | Method, t: int = 0, seed: int = 0,
                 batch: int = 16) -> SanityCheck:
    """Mean Spearman ρ of |map| between model and its randomised copies on images x (N, C, H, W), for the
    class the trained model predicts (the same target in all three models)."""
    fn = METHODS[method] if isinstance(method, str) else method
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    with torch.no_grad():
        k = model.classify(x, t).argmax(1)

    def maps(m: nn.Module) -> Tensor:
        return torch.cat([fn(m, x[i:i + batch], k[i:i + batch], t=t, seed=seed).flatten(1).abs().cpu()
                          for i in range(0, len(x), batch)])

    base = maps(model)
    rho = [float(spearman(base, maps(redrawn(model, part, seed + 1))).mean()) for part in ("head", "all")]
    return SanityCheck(name, rho[0], rho[1], len(x))


def to_png(attribution: np.ndarray, path, scale: int = 8) -> None:
    """A signed map → a red (+) / blue (−) PNG, symmetric colour scale, enlarged with nearest neighbour."""
    from PIL import Image
    a = np.asarray(attribution, dtype=np.float64)
    m = np.abs(a).max() or 1.0
    v = a / m
    rgb = np.stack([1 - np.clip(-v, 0, 1), 1 - np.abs(v), 1 - np.clip(v, 0, 1)], -1)
    img = Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")
    img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).save(path)


def sanity_label(method: str, checkpoint: str) -> str:
    """What the measured table (assets/results/attribution/sanity-NAME.json) says about a method for this
    checkpoint: 'passes …', 'FAILS …' or 'not checked …'."""
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "assets" / "results" / "attribution" / f"sanity-{checkpoint}.json"
    try:
        row = json.loads(path.read_text())[method]
    except (OSError, ValueError, KeyError):
        return "randomisation check: not measured for this model"
    verdict = "passes" if row["passes"] else "FAILS"
    return f"{verdict} the randomisation check (ρ {row['rho_head']:.2f} head / {row['rho_all']:.2f} all re-drawn)"
