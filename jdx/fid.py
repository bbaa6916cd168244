"""Fréchet distance between feature distributions (Heusel et al. 2017):
FID = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^{½} Σ₂ Σ₁^{½})^{½}), on the separate classifier's features."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class Stats(NamedTuple):
    mu: Tensor      # (D,) float64
    sigma: Tensor   # (D, D) float64


@torch.no_grad()
def features(classifier: nn.Module, images: Tensor, batch: int = 500) -> Tensor:
    """images (N, C, H, W) in [−1, 1] → (N, D) penultimate features of the feature classifier."""
    device = next(classifier.parameters()).device
    return torch.cat([classifier(images[i:i + batch].to(device)).features.double().cpu()
                      for i in range(0, len(images), batch)])


def stats(f: Tensor) -> Stats:
    f = f.double()
    return Stats(f.mean(0), torch.cov(f.T))


def _sqrtm_psd(a: Tensor) -> Tensor:
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(s1: Stats, s2: Stats) -> float:
    root1 = _sqrtm_psd(s1.sigma)
    # Σ₁^{½} Σ₂ Σ₁^{½} is symmetric PSD and has the eigenvalues of Σ₁Σ₂: its root's trace is Tr((Σ₁Σ₂)^{½}).
    cross = _sqrtm_psd(root1 @ s2.sigma @ root1)
    d = (s1.mu - s2.mu).pow(2).sum() + torch.trace(s1.sigma) + torch.trace(s2.sigma) - 2 * torch.trace(cross)
    return float(d.clamp(min=0))
