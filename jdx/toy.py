"""2-D toy diffusion models for teaching: labelled toy data sets, a small MLP joint model with the same
interface as the image JointModel (eps, eps_fn, classify, predict, schedule), a 2-D noise-level classifier
(CDM), and their training loops.

Because the interface is the same, the library's samplers, guidance and counterfactuals run on these
points unchanged — the Learn view draws what they do in the plane.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .cdm import CDMObjective, LevelClassifier
from .diffusion import Schedule, ScheduleConfig
from .unet import timestep_embedding


# ---------- labelled toy data sets, scaled into [−1, 1]² (the samplers clip x̂₀ to that box) -------------

def _moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    a = rng.uniform(0, math.pi, n)
    x = np.where(y[:, None] == 0, np.stack([np.cos(a), np.sin(a)], 1),
                 np.stack([1 - np.cos(a), 0.5 - np.sin(a)], 1))
    x = (x - [0.5, 0.25]) / 1.6
    return x + rng.normal(0, 0.04, x.shape), y


def _gmm(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 4, n)
    centres = 0.55 * np.stack([np.cos(np.pi / 4 + y * np.pi / 2), np.sin(np.pi / 4 + y * np.pi / 2)], 1)
    return centres + rng.normal(0, 0.12, (n, 2)), y


def _spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    r = np.sqrt(rng.uniform(0.02, 1, n))                  # uniform density along the arm's area
    a = 3 * math.pi * r + y * math.pi
    x = 0.85 * r[:, None] * np.stack([np.cos(a), np.sin(a)], 1)
    return x + rng.normal(0, 0.03, x.shape), y


TOY_SETS = {
    "moons": (_moons, ["upper moon", "lower moon"]),
    "gmm": (_gmm, ["north-east", "north-west", "south-west", "south-east"]),
    "spirals": (_spirals, ["arm A", "arm B"]),
}


def toy_data(name: str, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(x (n, 2) float32 in about [−1, 1]², y (n,) class indices) for a named toy set."""
    if name not in TOY_SETS:
        raise ValueError(f"unknown toy data set {name!r}; choose from {', '.join(TOY_SETS)}")
    x, y = TOY_SETS[name][0](n, np.random.default_rng(seed))
    return torch.from_numpy(np.clip(x, -1, 1)).float(), torch.from_numpy(y).long()


# ---------- the model ----------------------------------------------------------------------------------------

def silu_mlp(n_in: int, hidden: int, depth: int) -> list[nn.Module]:
    """The layers of the toy networks' trunk: depth × (Linear → SiLU); SiLU is smooth, so input gradients
    (scores, ∇ₓF) are too. A list, so that callers append their own output layer in one Sequential."""
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    return layers

@dataclass
class ToyConfig:
    data: str = "moons"
    hidden: int = 128
    depth: int = 3
    T: int = 100
    schedule: str = "cosine"     # cosine: ᾱ_T ≈ 0 even with only 100 steps

    @property
    def num_classes(self) -> int:
        return len(TOY_SETS[self.data][1])


class ToyJointModel(nn.Module):
    """An MLP trunk on (x_t, t) whose last hidden layer feeds both ε̂ and the class logits — the joint
    model in two dimensions: the classifier is noise-aware because it sees t like the denoiser does."""
    kind = "toy"

    def __init__(self, config: ToyConfig = ToyConfig()):
        super().__init__()
        self.config = config
        self.schedule = Schedule(ScheduleConfig(config.schedule, config.T))
        h = config.hidden
        self.trunk = nn.Sequential(*silu_mlp(2 + 32, h, config.depth))
        self.eps_head = nn.Linear(h, 2)
        self.cls_head = nn.Linear(h, config.num_classes)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def config_dict(self) -> dict:
        return {"toy": asdict(self.config)}

    def _trunk(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        t = torch.as_tensor(t, device=x_t.device).long().expand(x_t.shape[0])
        # t/T scaled to the U-Net's embedding range so both families see time the same way.
        return self.trunk(torch.cat([x_t, timestep_embedding(t.float() * 1000 / self.schedule.T, 32)], 1))

    def eps(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        return self.eps_head(self._trunk(x_t, t))

    def eps_fn(self, x_t: Tensor, t: int) -> Tensor:
        return self.eps(x_t, t)

    def classify(self, x_t: Tensor, t: Tensor | int = 0) -> Tensor:
        return self.cls_head(self._trunk(x_t, t))

    @torch.no_grad()
    def predict(self, x: Tensor, t: int = 0, generator: torch.Generator | None = None) -> Tensor:
        if t > 0:
            x = self.schedule.noise_to(x, t, torch.randn(x.shape, generator=generator))
        return self.classify(x, t).softmax(-1)

    @torch.no_grad()
    def score(self, x_t: Tensor, t: int) -> Tensor:
        """∇ log p_t(x_t) ≈ −ε̂ / √(1 − ᾱ_t)."""
        return self.schedule.score_from_eps(self.eps(x_t, t), t)


# Adam's rate for the 2-D MLPs (toy, toy-cdm, toy-mdm). The image default (2e-4) left the first toy MDMs a
# Gaussian blob after 3,000 steps (held-out −ELBO 1.01 nats; a Gaussian fit scores 0.95); 2e-3 gives two moons.
TOY_LR = 2e-3


def fit_toy(model: nn.Module, loss_fn, data: str, steps: int, batch: int, lr: float, seed: int, progress=None,
            clip: float | None = None) -> tuple[Tensor, Tensor, float]:
    """The one training loop of every 2-D model: Adam with a cosine learning rate on a fresh batch of the
    infinite toy distribution each step. loss_fn(x0, y) → (loss, diffusion term, classification term).
    Returns the last step's two terms and the wall time in seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 20)
    start = time.time()
    for step in range(steps):
        x0, y = toy_data(data, batch, seed=seed * 100_003 + step)
        loss, diffusion, ce = loss_fn(x0, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:     # the MDMs' learned diffusion parameters make early steps spiky
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        if progress is not None:
            progress(step, diffusion.item(), ce.item())
    model.eval()
    return diffusion.detach(), ce.detach(), round(time.time() - start, 1)


def train_toy(config: ToyConfig, steps: int = 4000, batch: int = 512, lr: float = TOY_LR, lam: float = 1.0,
              seed: int = 0, progress=None) -> tuple[ToyJointModel, dict]:
    """Joint loss ‖ε − ε̂(x_t, t)‖² + λ CE(y, p(· | x_t, t)) with t ~ U{0 … T} (t = 0: the clean point).
    Returns the model and its metrics."""
    torch.manual_seed(seed)
    model = ToyJointModel(config)

    def joint_loss(x0: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t = torch.randint(0, config.T + 1, (len(x0),))
        eps = torch.randn_like(x0)
        h = model._trunk(model.schedule.noise_to(x0, t, eps), t)
        mse = (model.eps_head(h) - eps)[t > 0].pow(2).mean()       # t = 0 has no noise to predict
        ce = nn.functional.cross_entropy(model.cls_head(h), y)
        return mse + lam * ce, mse, ce

    mse, ce, wall = fit_toy(model, joint_loss, config.data, steps, batch, lr, seed, progress)
    x, y = toy_data(config.data, 4000, seed=10**6 + seed)   # held-out draw
    accuracy = float((model.predict(x).argmax(1) == y).float().mean())
    return model, {"test_accuracy": accuracy, "final_mse": float(mse), "final_ce": float(ce), "wall_time_s": wall}


# ---------- the 2-D noise-level classifier (CDM) -----------------------------------------------------------

class ToyCDM(LevelClassifier, nn.Module):
    """CDM in the plane: an MLP on x alone (no time input) → T+2 neighbouring-level log-ratios. Its input
    gradient gives the same ε̂ field as a denoiser (Thm 3.1) — the Learn view draws both side by side."""
    kind = "toy-cdm"

    def __init__(self, config: ToyConfig = ToyConfig()):
        nn.Module.__init__(self)
        self.config = config
        self.schedule = Schedule(ScheduleConfig(config.schedule, config.T))
        h = config.hidden
        self.net = nn.Sequential(*silu_mlp(2, h, config.depth), nn.Linear(h, config.T + 2))
        self._init_levels()

    def config_dict(self) -> dict:
        return {"toy": asdict(self.config)}

    def log_ratios(self, x: Tensor) -> Tensor:
        return self.net(x)

    def score(self, x_t: Tensor, t: int) -> Tensor:
        """∇ log p_t(x_t) = −ε̂ / √(1 − ᾱ_t), here from the classifier's gradient."""
        return self.schedule.score_from_eps(self.eps(x_t, t), t)


def train_toy_cdm(config: ToyConfig, steps: int = 4000, batch: int = 512, lr: float = TOY_LR, w_ce: float = 0.01,
                  seed: int = 0, progress=None) -> tuple[ToyCDM, dict]:
    """CDM loss w_ce · CE + ‖ε − ε̂‖² on fresh toy batches (continuous data: no dequantisation)."""
    torch.manual_seed(seed)
    model = ToyCDM(config)
    objective = CDMObjective(model, w_ce, dequantise=False)

    def cdm_loss(x0: Tensor, _y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = objective(x0)
        return out.loss, out.diffusion, out.ce

    mse, ce, wall = fit_toy(model, cdm_loss, config.data, steps, batch, lr, seed, progress)
    x, _ = toy_data(config.data, 4000, seed=10**6 + seed)
    with torch.no_grad():
        nll = -model.log_likelihood(x).mean().item()
    return model, {"test_nll_nats": nll, "probability_mass": probability_mass(model),
                   "final_mse": float(mse), "final_ce": float(ce), "wall_time_s": wall}


@torch.no_grad()
def probability_mass(model: ToyCDM, half_width: float = 4.0, n: int = 400) -> float:
    """∫ p(x) dx over [−w, w]² by the midpoint rule: 1 for a normalised density (Thm 3.2 has no free constant)."""
    u = (torch.arange(n) + 0.5) / n * 2 * half_width - half_width
    xx = torch.cartesian_prod(u, u)
    return float(model.log_likelihood(xx).exp().sum() * (2 * half_width / n) ** 2)


def train_toy_checkpoint(kind: str, data: str, out: str | None = None, *, steps: int = 4000, batch: int = 512,
                         lr: float = TOY_LR, seed: int = 0, T: int | None = None, lam: float = 1.0, w_ce: float = 0.01,
                         diffusion=None, mixed_var: float | None = None, progress=None,
                         command: str = "") -> tuple["Path", dict]:
    """Train a 2-D model and save it: kind toy (joint), toy-cdm (noise-level classifier) or toy-mdm (a
    multivariate diffusion, `diffusion` a jdx.mdm.DiffusionConfig; mixed_var: jdx.mdm.toy.train_toy_mdm's). out defaults to
    checkpoints/toy-DATA[-cdm | -DIFFUSION]. progress(step, mse, ce=0) after each step. Returns the stem and
    the metrics written to its JSON."""
    from . import checkpoint
    if data not in TOY_SETS:
        raise ValueError(f"a {kind} model trains on {'|'.join(TOY_SETS)}, not {data!r}")
    config = ToyConfig(data, T=T or ToyConfig().T)
    if kind == "toy-mdm":
        from .mdm.toy import train_toy_mdm
        if diffusion is None:
            raise ValueError("toy-mdm needs a diffusion (jdx.mdm.DiffusionConfig)")
        model, metrics = train_toy_mdm(data, diffusion, steps, batch, lr, seed, progress, mixed_var=mixed_var)
        keep, suffix = ("test_nll_nats", "test_nll_se"), f"-{diffusion.name}"
    elif kind == "toy":
        model, metrics = train_toy(config, steps, batch, lr, lam, seed, progress)
        keep, suffix = ("test_accuracy",), ""
    elif kind == "toy-cdm":
        model, metrics = train_toy_cdm(config, steps, batch, lr, w_ce, seed, progress)
        keep, suffix = ("test_nll_nats", "probability_mass"), "-cdm"
    else:
        raise ValueError(f"unknown toy kind {kind!r} (toy, toy-cdm, toy-mdm)")
    kept = {k: metrics[k] for k in keep}
    training = {"command": command, "steps": steps, "wall_time_s": metrics["wall_time_s"], "device": "cpu"}
    stem = checkpoint.save(model, out or f"checkpoints/toy-{data}{suffix}",
                           {"name": data, "class_names": TOY_SETS[data][1], "dims": 2}, training, kept)
    return stem, kept
