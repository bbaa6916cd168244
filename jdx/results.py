"""Named results shared by the model families, in one neutral home: what a network pass returns
(`JointOutput`) and what every training objective returns (`LossOutput`), so one loop trains them all."""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class JointOutput(NamedTuple):
    eps: Tensor               # (B, C, H, W) predicted noise ε̂(x_t, t)
    logits: Tensor | None     # (B, num_classes) class logits (joint); (B, T+2) level logits (CDM); None (DDPM)
    features: list[Tensor]    # per-block feature maps (empty unless asked)


class LossOutput(NamedTuple):
    loss: Tensor
    diffusion: Tensor     # ‖ε − ε̂‖² (mean over pixels and batch); the MDM objective reports bits/dim here
    ce: Tensor            # cross-entropy of the classifier (0 for diffusion-only)
    correct: Tensor       # number of correct classifier predictions in the CE batch
    count: int
