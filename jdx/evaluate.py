"""Measurements of a checkpoint: test accuracy (and vs. noise level), sample FID against the test set on
the separate classifier's features next to the real-vs-real floor, guided-sample accuracy, and the
counterfactual flip rate. Each returns plain numbers for NAME.json and the README."""
from __future__ import annotations

import time

import torch
from torch import nn
from tqdm import tqdm

from . import fid
from .counterfactual import counterfactual
from .data import Dataset
from .generate import generate_batched
from .protocols import Classifier, Likelihood, supports


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, t: int = 0, batch: int = 500, seed: int = 0) -> float:
    """Accuracy of p(y | x_t) on data noised to t (t = 0: clean)."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(data), batch):
        x = data.to_model(slice(i, i + batch)).to(device)
        correct += (model.predict(x, t, generator=g).argmax(-1).cpu() == data.labels[i:i + batch]).sum().item()
    return correct / len(data)


def sample_quality(model: nn.Module, feature_clf: nn.Module, train: Dataset, test: Dataset, n: int,
                   steps: int, batch: int, seed: int, guided_scale: float = 0.0) -> dict:
    """FID of n unguided samples vs. the test set, the train-vs-test floor, and (joint models, if
    guided_scale > 0) the separate classifier's accuracy on n class-guided samples."""
    real_test = fid.stats(fid.features(feature_clf, test.to_model()))
    real_train = fid.stats(fid.features(feature_clf, train.to_model(slice(0, max(n, len(test))))))
    out = {"fid_floor_train_vs_test": fid.frechet_distance(real_train, real_test)}
    start = time.time()
    with tqdm(total=n, desc="samples (FID)", leave=False) as bar:
        images = generate_batched(model, n, batch, steps=steps, seed=seed, progress=bar)
    out["sample_images_per_s"] = n / (time.time() - start)
    out["fid"] = fid.frechet_distance(fid.stats(fid.features(feature_clf, images)), real_test)
    out["fid_samples"], out["fid_sampler"] = n, f"ddim {steps} steps"
    if guided_scale > 0 and supports(model, Classifier):
        labels = torch.arange(n) % model.num_classes
        with tqdm(total=n, desc="guided samples", leave=False) as bar:
            guided = generate_batched(model, n, batch, labels=labels, scale=guided_scale, steps=steps,
                                      seed=seed + 10**6, progress=bar)
        pred = feature_clf.predict(guided.to(next(feature_clf.parameters()).device)).argmax(-1).cpu()
        out["guided_accuracy"] = (pred == labels).float().mean().item()
        out["guided_scale"] = guided_scale
        out["fid_guided"] = fid.frechet_distance(fid.stats(fid.features(feature_clf, guided)), real_test)
    return out


def counterfactual_flips(model: nn.Module, feature_clf: nn.Module | None, test: Dataset, n: int, t_star: int,
                         scale: float, steps: int, batch: int = 100, seed: int = 0) -> dict:
    """Counterfactuals of n test images toward random targets ≠ their label: how often each classifier
    flips to the target, and the mean pixel change."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test), generator=g)[:n]
    y = test.labels[idx]
    target = (y + torch.randint(1, model.num_classes, (n,), generator=g)) % model.num_classes  # never y itself
    joint_hits = sep_hits = 0
    l1 = l2 = 0.0
    for i in tqdm(range(0, n, batch), desc="counterfactuals", leave=False):
        x = test.to_model(idx[i:i + batch])
        w = torch.nn.functional.one_hot(target[i:i + batch], model.num_classes).float()
        cf = counterfactual(model, x, w, t_star=t_star, scale=scale, steps=steps, seed=seed + i)
        tgt = target[i:i + batch]
        joint_hits += (cf.probs_after.argmax(-1).cpu() == tgt).sum().item()
        if feature_clf is not None:
            sep_hits += (feature_clf.predict(cf.x_cf).argmax(-1).cpu() == tgt).sum().item()
        l1 += cf.l1.sum().item()
        l2 += cf.l2.sum().item()
    out = {"cf_images": n, "cf_t_star": t_star, "cf_scale": scale, "cf_steps": steps,
           "cf_flip_joint": joint_hits / n, "cf_mean_l1": l1 / n, "cf_mean_rms": l2 / n}
    if feature_clf is not None:
        out["cf_flip_separate"] = sep_hits / n
    return out


def default_comparison(model: nn.Module, baseline: str) -> str:
    """Which checkpoint's denoising MSE to show beside a model's: the diffusion-only baseline (a stem), when it
    exists, has the model's image size, and the model is not itself a plain denoiser ('' otherwise)."""
    from pathlib import Path

    from .checkpoint import read_meta
    shipped = Path(baseline).with_suffix(".json")
    if not shipped.is_file() or not (supports(model, Classifier) or supports(model, Likelihood)):
        return ""
    info = getattr(model, "info", None)
    size = info.data.get("image_size") if info is not None else None
    return baseline if read_meta(shipped)["data"].get("image_size") == size else ""
