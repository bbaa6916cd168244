"""Test bits/dim of an image MDM: the one-sample ELBO of each image, averaged over `repeats` draws of
(τ, ε, dequantisation), with its standard error over images."""
from __future__ import annotations

import torch
from tqdm import tqdm

from .model import MDM


@torch.no_grad()
def test_bpd(model: MDM, x0: torch.Tensor, repeats: int = 4, batch: int = 250, seed: int = 0,
             progress: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    per_image = []
    for i in tqdm(range(0, len(x0), batch), desc="bits/dim", disable=not progress):
        xb = x0[i:i + batch]
        bpd = torch.stack([model.bits_per_dim(xb.to(device), _on(g, device)).cpu() for _ in range(repeats)])
        per_image.append(bpd.mean(0))
    b = torch.cat(per_image)
    return {"test_bpd": float(b.mean()), "test_bpd_se": float(b.std() / len(b) ** 0.5), "bpd_images": len(b),
            "bpd_repeats": repeats}


def _on(g: torch.Generator, device: torch.device) -> torch.Generator | None:
    # CPU generator for CPU runs (reproducible); CUDA draws its own noise
    return g if device.type == "cpu" else None
