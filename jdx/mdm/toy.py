"""MDMs on the 2-D toy sets (jdx.toy): the same engine and ELBO with an MLP score network, trained on fresh
draws of the toy distribution each step. These checkpoints feed the app's Auxiliary-variables view."""
from __future__ import annotations

import torch

from ..toy import TOY_LR, fit_toy, toy_data
from .diffusions import DiffusionConfig
from .model import MDM, MDMConfig, MDMObjective
from .nets import MLPConfig


@torch.no_grad()
def toy_nll(model: MDM, data: str, n: int = 4000, repeats: int = 8, seed: int = 10**6) -> tuple[float, float]:
    """Held-out −ELBO in nats per point (an upper bound on the NLL): mean and its standard error."""
    x, _ = toy_data(data, n, seed=seed)
    g = torch.Generator().manual_seed(seed)
    nll = torch.stack([model.nll(x, g) for _ in range(repeats)]).mean(0)
    return float(nll.mean()), float(nll.std() / n ** 0.5)


def toy_variance(data: str) -> float:
    """The mean per-coordinate variance of a toy set (a fixed draw), rounded so a config reads cleanly."""
    x, _ = toy_data(data, 20000, seed=10**6 + 1)
    return round(float(x.var(0).mean()), 3)


def train_toy_mdm(data: str, diffusion: DiffusionConfig, steps: int = 4000, batch: int = 512, lr: float = TOY_LR,
                  seed: int = 0, progress=None, mlp: MLPConfig = MLPConfig(),
                  mixed_var: float | None = None) -> tuple[MDM, dict]:
    """mixed_var None: the data's own variance per coordinate (toy_variance), the mixed score's Gaussian."""
    torch.manual_seed(seed)
    model = MDM(MDMConfig(diffusion, mlp=mlp, mixed_var=toy_variance(data) if mixed_var is None else mixed_var))
    objective = MDMObjective(model)

    def elbo_loss(x0: torch.Tensor, _y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = objective(x0)
        return out.loss, out.diffusion, torch.zeros(())

    _, _, wall = fit_toy(model, elbo_loss, data, steps, batch, lr, seed, progress, clip=1.0)
    nll, se = toy_nll(model, data)
    return model, {"test_nll_nats": nll, "test_nll_se": se, "wall_time_s": wall}
