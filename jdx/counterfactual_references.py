"""Which of several candidate edits looks most like a real member of the target class — asked of the joint model
alone (never a separate classifier, never the true label).

The joint classifier is convinced by every candidate (it steered them), so its own verdict says little about which
one a second opinion would believe. Its features say more: a candidate whose pooled encoder features z = f(x_cf)
lie close to the features of real *training* images of the target class is a typical instance; a faint overlay of
the target's texture on the source's silhouette is not, even when the head calls it the target. The score is the
mean distance to the k nearest reference features of each target class (a k-NN density proxy in the head's input
space, as in the prototype-guided counterfactuals of Van Looveren & Klaise, ECML 2021), weighted by the mixture w:
    d(x_cf) = Σ_c w_c · mean_{k nearest z_j of class c} ‖f(x_cf) − z_j‖₂
References: REFERENCES_PER_CLASS training images per class, encoded once; shipped for the Fashion-MNIST model under
assets/results/counterfactuals/ (`python -m jdx.counterfactual_references CKPT` writes them), fitted from the
checkpoint's training data on first use otherwise. Models without an image encoder (the 2-D toys) are scored by
the joint classifier's target log-probability instead.
"""
from __future__ import annotations

import sys
import weakref
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .ood import pooled_features      # f(x): the joint classifier's input at t = 0

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT / "assets" / "results" / "counterfactuals"
REFERENCES_PER_CLASS = 300    # training images per class whose features are the references (dev: 300 ≈ 1000)
KNN = 10                      # k of the k-NN distance


class References(NamedTuple):
    features: Tensor          # (N, F) pooled encoder features of training images at t = 0
    labels: Tensor            # (N,) their classes


def has_image_encoder(model: nn.Module) -> bool:
    """The joint image model: a U-Net encoder whose pooled features feed the classifier head."""
    return hasattr(model, "features") and hasattr(getattr(model, "unet", None), "encode")


@torch.no_grad()
def fit_references(model: nn.Module, per_class: int = REFERENCES_PER_CLASS, seed: int = 0,
                   source: str | None = None) -> References:
    """Encode `per_class` training images of each class (a seeded draw from the checkpoint's training split)."""
    from .data import load_like
    train = load_like(model.info.data, "train", source)
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([pool[torch.randperm(len(pool), generator=g)[:per_class]]
                     for pool in (torch.nonzero(train.labels == k)[:, 0] for k in range(model.num_classes))])
    device = next(model.parameters()).device
    z = torch.cat([pooled_features(model, train.to_model(idx[i:i + 250]).to(device)).cpu() for i in range(0, len(idx), 250)])
    return References(z, train.labels[idx].clone())


def reference_path(model: nn.Module) -> Path:
    return REFERENCE_DIR / f"references-{model.info.name}.safetensors"


def save_references(refs: References, path: Path) -> None:
    from safetensors.torch import save_file
    save_file({"features": refs.features.half().contiguous(), "labels": refs.labels.contiguous()}, str(path))


_CACHE: "weakref.WeakKeyDictionary[nn.Module, References]" = weakref.WeakKeyDictionary()


def references(model: nn.Module) -> References:
    """The model's references: the shipped file when it exists, else fitted once per loaded model (cached)."""
    if model not in _CACHE:
        path = reference_path(model) if getattr(model, "info", None) is not None else None
        if path is not None and path.is_file():
            from safetensors.torch import load_file
            t = load_file(str(path))
            _CACHE[model] = References(t["features"].float(), t["labels"].long())
        else:
            _CACHE[model] = fit_references(model)
    return _CACHE[model]


@torch.no_grad()
def target_distance(model: nn.Module, x: Tensor, w: Tensor, k: int = KNN) -> Tensor:
    """d(x) = Σ_c w_c · (mean distance of f(x) to the k nearest references of class c), (B,); lower = more typical.
    Without an image encoder: −Σ_c w_c log p(c | x) under the joint classifier."""
    w = w.to(x.device)
    if not has_image_encoder(model):
        return -(w * torch.log_softmax(model.classify(x, 0).float(), -1)).sum(-1).cpu()
    refs = references(model)
    d = torch.cdist(pooled_features(model, x).cpu(), refs.features)                     # (B, N)
    out = torch.zeros(len(x))
    for c in torch.nonzero(w.cpu().sum(0) > 0)[:, 0].tolist():
        d_c = d[:, refs.labels == c]
        out += w[:, c].cpu() * d_c.topk(min(k, d_c.shape[1]), dim=1, largest=False).values.mean(1)
    return out


if __name__ == "__main__":      # python -m jdx.counterfactual_references checkpoints/fmnist-joint
    from .checkpoint import load
    torch.set_num_threads(1)
    m = load(sys.argv[1])
    save_references(fit_references(m), reference_path(m))
    print(reference_path(m))
