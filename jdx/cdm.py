"""Classification Diffusion Model (Yadin, Elata, Michaeli 2024): a classifier of the *noise level*.

f_θ(x) gives logits over levels t ∈ {0, …, T+1}: t = 0 is clean (dequantised) data, t = 1…T the DDPM
levels of the shared schedule, t = T+1 pure N(0, I) (ᾱ_{T+1} = 0). The network has no time input: it must
infer the level. Two theorems turn that classifier into a diffusion model:

  Thm 3.1   F(x, t) = log p(T+1 | x) − log p(t | x),   E[ε | x_t] = √(1 − ᾱ_t) · (∇ₓF(x_t, t) + x_t)
  Thm 3.2   log p(x) = f[0](x) − f[T+1](x) − ½‖x‖² − (d/2) log 2π            (one network pass)

Both follow from Bayes with a uniform prior over levels: p(t | x) ∝ p_t(x), so log-ratios of the
classifier's outputs are log-ratios of the noisy densities, and p_{T+1} = N(0, I) is known.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.nn.functional import cross_entropy
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .dequantization import dequantize_unit
from .diffusion import Schedule, ScheduleConfig
from .joint import DiffusionModel
from .results import JointOutput, LossOutput
from .unet import UNetConfig

# Bits per dimension of a density on [−1, 1] → of 8-bit data: a bin is 2/256 wide, −log₂(2/256) = 7.
BITS_8BIT = 7.0


def dequantize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x on the 8-bit grid p/127.5 − 1 → (p + u)·2/256 − 1, u ~ U[0, 1): uniform dequantisation on [−1, 1].
    generator: a CPU generator for reproducible evaluation; None draws on x's device (training)."""
    return dequantize_unit(x, generator) * 2 - 1


class LevelDenoising(NamedTuple):
    eps_hat: Tensor     # (B, …) ε̂ from Thm 3.1
    grad_F: Tensor      # (B, …) ∇ₓF(x_t, t)
    logits: Tensor      # (B, T+2) f_θ(x_t)


class LevelClassifier:
    """The CDM math on top of any network giving log_ratios(x) → (B, T+2): mixed into the image CDM below
    and the 2-D toy CDM (jdx.toy), so both share one implementation of the two theorems.

    The network's outputs are *log-ratios of neighbouring levels*, log p(t|x) − log p(t−1|x); a fixed
    cumulative sum turns them into logits (the paper's parameterisation: each output only has to say how
    much noisier x looks than one level less)."""
    schedule: Schedule

    def _init_levels(self) -> None:
        self.levels = self.schedule.T + 2
        # ᾱ over the T+2 levels: the shared schedule's ᾱ₀ … ᾱ_T, then ᾱ_{T+1} = 0 (pure noise).
        self.register_buffer("alpha_bar", torch.cat([self.schedule.alpha_bar, torch.zeros(1)]), persistent=False)

    def log_ratios(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def logits(self, x: Tensor) -> Tensor:
        """f_θ(x): (B, T+2) logits over noise levels, float32 (a cumulative sum of 500 bf16 terms would drift)."""
        return self.log_ratios(x).float().cumsum(dim=-1)

    def level_probs(self, x: Tensor) -> Tensor:
        """p(t | x) over t = 0 … T+1."""
        return self.logits(x).softmax(dim=-1)

    def noise_to(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """q(x_t | x₀) over the extended levels (t = T+1 gives ε itself)."""
        a = self.alpha_bar[t].reshape(-1, *[1] * (x0.dim() - 1))
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    @staticmethod
    def log_odds(f: Tensor, t: Tensor) -> Tensor:
        """F(x, t) = log p(T+1 | x) − log p(t | x) = f[T+1] − f[t] from the logits f (B, T+2) of x at levels
        t (B,): the softmax normaliser cancels."""
        return f[:, -1] - f.gather(1, t[:, None]).squeeze(1)

    def eps_and_grad(self, x_t: Tensor, t: Tensor | int, create_graph: bool = False) -> "LevelDenoising":
        """Thm 3.1: ε̂ = √(1 − ᾱ_t) · (∇ₓF(x_t, t) + x_t), with ∇ₓF and the logits it came from. create_graph
        keeps the graph (the training loss differentiates ε̂ again); otherwise all come back detached."""
        t = torch.as_tensor(t, device=x_t.device).long().expand(x_t.shape[0])
        with torch.enable_grad():
            x = x_t if x_t.requires_grad else x_t.detach().requires_grad_(True)
            f = self.logits(x)                                                 # (B, T+2)
            grad_F, = torch.autograd.grad(self.log_odds(f, t).sum(), x, create_graph=create_graph)
        a = self.alpha_bar[t].reshape(-1, *[1] * (x_t.dim() - 1))
        eps_hat = (1 - a).sqrt() * (grad_F + x)
        if create_graph:
            return LevelDenoising(eps_hat, grad_F, f)
        return LevelDenoising(eps_hat.detach(), grad_F.detach(), f.detach())

    def eps(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """The sampler interface: any ε-sampler runs on a CDM (each step one forward and one backward pass)."""
        return self.eps_and_grad(x_t, t).eps_hat

    def eps_fn(self, x_t: Tensor, t: int) -> Tensor:
        return self.eps(x_t, t)

    def log_likelihood(self, x: Tensor) -> Tensor:
        """Thm 3.2 (nats, per sample): log p(x) = f[0] − f[T+1] − ½‖x‖² − (d/2) log 2π."""
        f = self.logits(x)
        d = x[0].numel()
        sq = x.flatten(1).pow(2).sum(1)
        return f[:, 0] - f[:, -1] - 0.5 * sq - 0.5 * d * math.log(2 * math.pi)


class CDM(LevelClassifier, DiffusionModel):
    """The image CDM: a U-Net without time input → global average pool → linear → T+2 log-ratios."""
    kind = "cdm"

    def __init__(self, unet: UNetConfig = UNetConfig(out_channels=32, time_input=False),
                 schedule: ScheduleConfig = ScheduleConfig()):
        if unet.time_input:
            raise ValueError("a CDM's U-Net has no time input (time_input=False): it must infer the noise level")
        DiffusionModel.__init__(self, unet, schedule)
        self.head = nn.Linear(unet.out_channels, schedule.T + 2)
        self._init_levels()

    def log_ratios(self, x: Tensor) -> Tensor:
        # Flash/efficient attention kernels have no double backward; the loss and ε̂ differentiate ∇ₓF again.
        with sdpa_kernel([SDPBackend.MATH]):
            h = self.unet(x).out                              # (B, C, H, W)
        return self.head(h.mean(dim=(2, 3)))                  # (B, T+2)

    def forward(self, x_t: Tensor, t: Tensor | int, return_features: bool = False) -> JointOutput:
        """The base class's result: ε̂ from Thm 3.1 (a forward and a backward pass) and the level logits
        f_θ(x_t), (B, T+2). No block features: the CDM reads none (the flag keeps the shared signature)."""
        eps_hat, _, f = self.eps_and_grad(x_t, t)
        return JointOutput(eps_hat, f, [])

    def bits_per_dim(self, x: Tensor) -> Tensor:
        """−log p(x) / (d ln 2) + 7: bits per 8-bit pixel of x (dequantised data in [−1, 1])."""
        return -self.log_likelihood(x) / (x[0].numel() * math.log(2)) + BITS_8BIT


class CDMObjective(nn.Module):
    """L = w_ce · CE(t, f_θ(x_t)) + ‖ε − ε̂_θ(x_t, t)‖², t ~ U{0…T+1}, ε̂ from Thm 3.1 with a double backward.

    CE alone denoises badly and MSE alone gets the likelihood wrong (the paper's ablation): the MSE only sees
    ∇ₓF, i.e. the logits up to per-level constants, which the CE pins down. x₀ is dequantised first, so that
    level 0 is a density over [−1, 1] and not spikes on the 8-bit grid. The MSE skips t = 0, where ε does
    not enter x_t.
    """

    def __init__(self, model: LevelClassifier, w_ce: float = 1e-3, dequantise: bool = True):
        super().__init__()
        self.model = model
        self.w_ce = w_ce
        self.dequantise = dequantise      # 8-bit images: yes; continuous (toy) data: no

    def forward(self, x0: Tensor, x_lab: Tensor | None = None, y: Tensor | None = None) -> LossOutput:
        model = self.model
        B = x0.shape[0]
        if self.dequantise:
            x0 = dequantize(x0, None)
        t = torch.randint(0, model.levels, (B,), device=x0.device)
        eps = torch.randn_like(x0)
        x_t = model.noise_to(x0, t, eps).requires_grad_(True)
        eps_hat, _, f = model.eps_and_grad(x_t, t, create_graph=True)
        noisy = (t > 0).float()
        per_image = (eps - eps_hat.float()).pow(2).flatten(1).mean(1)
        l_mse = (per_image * noisy).sum() / noisy.sum().clamp(min=1)
        l_ce = cross_entropy(f, t)
        correct = (f.argmax(-1) - t).abs().le(model.levels // 50).sum()   # "right level" within ±2 % of T
        return LossOutput(l_mse + self.w_ce * l_ce, l_mse.detach(), l_ce.detach(), correct.detach(), B)
