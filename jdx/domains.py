"""Domain shift for the domain-adaptation experiment (Deja et al. 2023, §1 of papers.md): the labelled
source is the data set as it is, the unlabelled target a shifted copy of *other* images of it.

Shifts act on uint8 images so that they compose with everything that reads a Dataset:
- invert: 255 − pixel. Fashion-MNIST is bright clothes on black; inverted, every pixel statistic a
  classifier has learnt (where the mass is, which edges are bright) flips sign, so a source-only
  classifier collapses — yet the class is fully visible to a person.
- rotate: a quarter turn. Shapes survive, but their layout (vertical trouser legs, horizontal shoes)
  no longer matches the source.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .data import Dataset

SHIFTS = {
    "invert": lambda x: 255 - x,
    "rotate": lambda x: torch.rot90(x, 1, dims=(-2, -1)),
}


def shift_images(images: Tensor, kind: str) -> Tensor:
    """images: (N, C, H, W) uint8 → the same images in the target domain."""
    if kind not in SHIFTS:
        raise ValueError(f"unknown domain shift {kind!r}; choose one of {', '.join(SHIFTS)}")
    return SHIFTS[kind](images).contiguous()


def shifted(ds: Dataset, kind: str) -> Dataset:
    """The whole data set moved to the target domain (labels kept for evaluation only)."""
    return Dataset(shift_images(ds.images, kind), ds.labels, ds.class_names, f"{ds.name}-{kind}")


def split_domains(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded half/half split of the training indices: (source, target). Disjoint, so that the target
    never holds a shifted copy of a labelled source image."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2], perm[n // 2:]
