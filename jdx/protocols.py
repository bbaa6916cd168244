"""What a model can do, declared once (PEP 544): the CLI, the evaluation and the app ask `supports(model, P)`
instead of testing a model's kind string or poking for attributes. A new model family plugs into every view
that needs P by implementing P.

  Denoiser               ε̂(x_t, t) on a discrete schedule — DDPM, joint, CDM (Thm 3.1) and the 2-D toys
  Classifier             logits of p(y | x_t, t) at a noise level — what guidance and counterfactuals need
  ImageClassifier        class probabilities of images — `jdx predict`, test accuracy
  Likelihood             bits/dim of images in one call — CDM (Thm 3.2), MDM (its ELBO)
  NoiseLevelClassifier   p(t | x) over noise levels and the denoiser its gradient gives — CDMs (image, toy)
  MultivariateDenoiser   ε̂(y_τ, τ) of a multivariate diffusion over K variables per data value — MDM
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .diffusion import Schedule


@runtime_checkable
class Denoiser(Protocol):
    """ε-prediction on the shared discrete schedule: any ε-sampler (DDPM, DDIM) and the ELBO run on it."""
    schedule: "Schedule"

    def eps(self, x_t: Tensor, t: Tensor | int) -> Tensor: ...


@runtime_checkable
class Classifier(Protocol):
    """A noise-aware classifier: logits of p(y | x_t, t), (B, num_classes)."""
    num_classes: int

    def classify(self, x_t: Tensor, t: Tensor | int = 0) -> Tensor: ...


@runtime_checkable
class ImageClassifier(Protocol):
    """p(y | x) of images in [−1, 1] (noised to t first when t > 0), (B, num_classes)."""
    num_classes: int

    def predict(self, x: Tensor, t: int = 0, generator: torch.Generator | None = None) -> Tensor: ...


@runtime_checkable
class Likelihood(Protocol):
    """Bits per dimension of images, (B,), in one call (no sampling chain)."""

    def bits_per_dim(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class NoiseLevelClassifier(Protocol):
    """p(t | x) over the levels 0 … T+1, and ε̂ with ∇ₓF from its gradient (CDM Thm 3.1)."""

    def level_probs(self, x: Tensor) -> Tensor: ...

    def eps_and_grad(self, x_t: Tensor, t: Tensor | int, create_graph: bool = False): ...


@runtime_checkable
class MultivariateDenoiser(Protocol):
    """ε̂(y_τ, τ) for y (B, K, …): a linear diffusion over the data and K − 1 auxiliary variables."""
    diffusion: object

    def eps(self, y: Tensor, tau: Tensor) -> Tensor: ...


def members(protocol: type) -> set[str]:
    """The attributes and methods a protocol declares (its own, not object's or Protocol's)."""
    names = set(getattr(protocol, "__annotations__", {}))
    return names | {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}


def supports(model: object, *protocols: type) -> bool:
    """True when the model implements every protocol given: the one capability check of the code base.
    Asked with getattr, not isinstance: from Python 3.12 on, isinstance with a runtime protocol looks members
    up statically and misses what nn.Module keeps in _modules/_buffers (a model's `schedule`, `diffusion`), so
    every DDPM and MDM read as incapable on the GPU machine's Python."""
    return all(hasattr(model, m) for p in protocols for m in members(p))


def require(model: object, protocol: type, purpose: str) -> None:
    """Raise a ValueError naming the model, what was asked and which capability it lacks."""
    if not supports(model, protocol):
        info = getattr(model, "info", None)
        name = f"{info.name} ({info.kind})" if info is not None else type(model).__name__
        doc = (protocol.__doc__ or "").strip().splitlines()[0]
        raise ValueError(f"{purpose} needs a {protocol.__name__} — {doc[0].lower() + doc[1:]} {name} is not one")
