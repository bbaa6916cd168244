"""A linear diffusion is the pair of K×K matrices (Q, D) and a stationary law q_∞ = N(0, Σ∞), Σ∞ diagonal:

    dy = −β(s) [Q + D] ∇H(y) ds + √(2 β(s) D) dB,   H(y) = −log q_∞(y) = ½ yᵀ Σ∞⁻¹ y + const,

with Q skew-symmetric and D positive semi-definite, so q_∞ is stationary for every such pair (the paper's
"complete recipe"). Because Q(s) = β(s)Q and D(s) = β(s)D share one scalar, the time change
τ = B(s) = ∫₀ˢ β turns the SDE into a time-homogeneous one, dy = A y dτ + √(2D) dB_τ with
A = −(Q + D) Σ∞⁻¹ — every kernel and ELBO computation below works in τ.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

BETA_0, BETA_1 = 0.1, 10.0       # β(s) = β₀ + s (β₁ − β₀), s ∈ [0, 1] (the authors' code)
S_MIN = 1e-3                     # sampling stops here (the authors' T_min)


def beta(s: Tensor) -> Tensor:
    return BETA_0 + s * (BETA_1 - BETA_0)


def tau_of_s(s: Tensor | float) -> Tensor:
    """τ = B(s) = β₀ s + ½ (β₁ − β₀) s²."""
    s = torch.as_tensor(s, dtype=torch.float64)
    return BETA_0 * s + 0.5 * (BETA_1 - BETA_0) * s ** 2


def s_of_tau(tau: Tensor) -> Tensor:
    """The inverse of B: the positive root of ½(β₁ − β₀) s² + β₀ s − τ = 0."""
    a = BETA_1 - BETA_0
    return (-BETA_0 + torch.sqrt(BETA_0 ** 2 + 2 * a * tau)) / a


@dataclass
class DiffusionConfig:
    name: str = "vpsde"          # vpsde | cld | alda | malda | learned
    K: int = 1                   # variables per data value: the data value and K − 1 auxiliaries
    aux_var: float = 1.0         # stationary variance of each auxiliary (CLD's mass M)
    init_aux_var: float = 0.01   # q(v₀ | x) = N(0, init_aux_var · I) (the authors' MNIST configs)
    learned_d: str = "full"      # learned D: "full" (D = BBᵀ) or "diagonal" (positive diagonal)

    def to_dict(self) -> dict:
        return asdict(self)


def _named(name: str, K: int, M: float) -> tuple[Tensor, Tensor]:
    """(Q, D) of the hand-designed diffusions."""
    if name == "vpsde":      # dx = −½β x ds + √β dB: Q = 0, D = ½
        return torch.zeros(1, 1), torch.full((1, 1), 0.5)
    if name == "cld":        # critically damped Langevin (Dockhorn et al.): position x, velocity v, Γ² = 4M
        return torch.tensor([[0.0, -1.0], [1.0, 0.0]]), torch.diag(torch.tensor([0.0, 2 * math.sqrt(M)]))
    if name == "alda":       # third-order (accelerated) Langevin (Mou et al.): x ← v ← w, noise on w only
        L = 1 / M
        return (torch.tensor([[0.0, -1 / L, 0.0], [1 / L, 0.0, -1.0], [0.0, 1.0, 0.0]]),
                torch.diag(torch.tensor([0.0, 0.0, 1 / L])))
    if name == "malda":      # every pair coupled, friction Γ = 2√M on every auxiliary
        ones = torch.ones(K, K)
        Q = ones.tril(-1) - ones.triu(1)
        return Q, torch.diag(torch.tensor([0.0] + [2 * math.sqrt(M)] * (K - 1)))
    raise ValueError(name)


DIFFUSIONS = {"vpsde": 1, "cld": 2, "alda": 3, "malda": 3, "learned": 2}   # name → default K


class LinearDiffusion(nn.Module):
    """(Q, D, Σ∞). Learned: Q = G − Gᵀ and D = BBᵀ (or a softplus diagonal) — skew-symmetric and positive
    semi-definite by construction, whatever values the optimiser gives G and B."""

    def __init__(self, config: DiffusionConfig = DiffusionConfig()):
        super().__init__()
        c = self.config = config
        if c.name not in DIFFUSIONS:
            raise ValueError(f"unknown diffusion {c.name!r}; choose from {', '.join(DIFFUSIONS)}")
        if c.name in ("vpsde", "cld", "alda") and c.K != DIFFUSIONS[c.name]:
            raise ValueError(f"{c.name} has K = {DIFFUSIONS[c.name]} variables, not {c.K}")
        if c.K < 1 or (c.name != "vpsde" and c.K < 2):
            raise ValueError(f"{c.name} needs K ≥ 2 variables")
        self.learned = c.name == "learned"
        # Σ∞ = diag(1, M, …, M); the learned diffusion keeps Σ∞ = I (its scale is learnable through D)
        var = torch.tensor([1.0] + [1.0 if self.learned else c.aux_var] * (c.K - 1))
        self.register_buffer("sigma_inf", var)
        if self.learned:
            g = torch.Generator().manual_seed(0)
            self.G = nn.Parameter(0.5 * torch.randn(c.K, c.K, generator=g))
            if c.learned_d == "full":
                self.B = nn.Parameter(torch.eye(c.K) + 0.1 * torch.randn(c.K, c.K, generator=g))
            elif c.learned_d == "diagonal":
                self.B = nn.Parameter(torch.zeros(c.K))      # softplus(0) ≈ 0.69
            else:
                raise ValueError(f"learned_d must be full or diagonal, not {c.learned_d!r}")
        else:
            Q, D = _named(c.name, c.K, c.aux_var)
            self.register_buffer("Q_fixed", Q)
            self.register_buffer("D_fixed", D)

    @property
    def K(self) -> int:
        return self.config.K

    def Q(self) -> Tensor:
        return self.G - self.G.T if self.learned else self.Q_fixed

    def D(self) -> Tensor:
        if not self.learned:
            return self.D_fixed
        if self.config.learned_d == "full":
            return self.B @ self.B.T
        return torch.diag(nn.functional.softplus(self.B))

    def A(self) -> Tensor:
        """The drift matrix per unit τ: A = −(Q + D) Σ∞⁻¹."""
        return -(self.Q() + self.D()) / self.sigma_inf[None, :]

    def Sigma0(self) -> Tensor:
        """Covariance of y₀ = [x, v₀] given x: 0 for x, init_aux_var for each v₀ (the "hybrid" kernel, which
        conditions on x alone and so has lower variance than conditioning on v₀ as well)."""
        return torch.diag(torch.tensor([0.0] + [self.config.init_aux_var] * (self.K - 1), device=self.sigma_inf.device))
