"""Uniform dequantisation of 8-bit images, written once: a density on a continuous range bounds the
likelihood of the discrete pixels when each pixel value is spread uniformly over its bin (the 256 bins tile
the range exactly). The CDM works on [−1, 1], the MDM on the logit of [0, 1]; both start here."""
from __future__ import annotations

import torch
from torch import Tensor


def dequantize_unit(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x on the 8-bit grid pixel/127.5 − 1 → u = (pixel + U[0, 1)) / 256 ∈ [0, 1).
    generator: drawn on the generator's device (a CPU generator gives the same numbers on every device), then
    moved to x's; None draws on x's device (training)."""
    pixel = ((x + 1) * 127.5).round()
    U = torch.rand(x.shape, generator=generator, device=x.device if generator is None else generator.device)
    return (pixel + U.to(x.device)) / 256
