"""Every measurement of a model, in one place: test accuracy (and vs. noise level), the diffusion loss on
fixed noise, bits/dim of a CDM (one pass) and of an image MDM (the ELBO), sample FID against the test set on
the separate classifier's features next to the real-vs-real floor, guided-sample accuracy, and the
counterfactual flip rate. Each returns plain numbers for NAME.json and the README.

training_metrics is what the training loop records every --eval-every steps; `jdx eval` and the bench
scripts call the same functions."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from . import fid
from .cdm import CDM
from .classifier import FeatureClassifier
from .counterfactual import counterfactual
from .data import Dataset
from .domains import shifted
from .generate import generate_batched
from .joint import DiffusionModel, JointModel
from .likelihood import bits_per_dim
from .mdm import MDM
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


@torch.no_grad()
def diffusion_loss(model: nn.Module, data: Dataset, device: torch.device, batch: int = 500, seed: int = 1234) -> float:
    """E‖ε − ε̂(x_t, t)‖² per value on data, with t and ε drawn from a generator seeded `seed` (fixed noise,
    so that two evaluations of one model agree and two models are compared on the same draws)."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for i in range(0, len(data), batch):
        x0 = data.to_model(slice(i, i + batch)).to(device)
        t = torch.randint(1, model.schedule.T + 1, (len(x0),), generator=g).to(device)
        eps = torch.randn(x0.shape, generator=g).to(device)
        eps_hat = model.eps(model.schedule.noise_to(x0, t, eps), t)
        total += F.mse_loss(eps_hat.float(), eps, reduction="sum").item() / eps[0].numel()
    return total / len(data)


@torch.no_grad()
def test_bpd(model: MDM, x0: Tensor, repeats: int = 4, batch: int = 250, seed: int = 0, progress: bool = True) -> dict:
    """Test bits/dim of an image MDM: the one-sample ELBO of each image, averaged over `repeats` draws of
    (τ, ε, dequantisation), with its standard error over images."""
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    g = g if device.type == "cpu" else None          # CPU generator for CPU runs (reproducible); CUDA draws its own
    per_image = []
    for i in tqdm(range(0, len(x0), batch), desc="bits/dim", disable=not progress):
        xb = x0[i:i + batch]
        bpd = torch.stack([model.bits_per_dim(xb.to(device), g).cpu() for _ in range(repeats)])
        per_image.append(bpd.mean(0))
    b = torch.cat(per_image)
    return {"test_bpd": float(b.mean()), "test_bpd_se": float(b.std() / len(b) ** 0.5), "bpd_images": len(b),
            "bpd_repeats": repeats}


@torch.no_grad()
def training_metrics(model: nn.Module, test: Dataset, n: int, device: torch.device, batch: int = 500,
                     shift: str = "") -> dict:
    """What training records on the first n test images: accuracy at t = 0 (classifiers; with a domain shift
    also on the shifted test set), the diffusion loss on fixed noise (diffusion models) and bits/dim (CDM:
    one pass on the dequantised images; image MDM: one ELBO draw each)."""
    model.eval()
    subset = Dataset(test.images[:n], test.labels[:n], test.class_names, test.name)
    out = {}
    if isinstance(model, (JointModel, FeatureClassifier)):
        out["test_accuracy"] = accuracy(model, subset, batch=batch)
        if shift:
            out["target_accuracy"] = accuracy(model, shifted(subset, shift), batch=batch)
    if isinstance(model, DiffusionModel):
        out["test_diffusion_loss"] = diffusion_loss(model, subset, device, batch)
    if isinstance(model, MDM):
        out["test_bpd"] = test_bpd(model, subset.to_model(), repeats=1, batch=batch, seed=1234, progress=False)["test_bpd"]
    if isinstance(model, CDM):
        bpd = bits_per_dim(model, subset.to_model(), seed=1234, batch=batch)[0]
        out["test_bpd"] = sum(b.sum().item() for b in bpd.split(batch)) / len(subset)
    out["eval_images"] = len(subset)
    return out


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
