"""Likelihood measures shared by the CLI, the evaluation and the app: bits/dim of any checkpoint (CDM: one
pass, Thm 3.2; DDPM/joint: the variational bound over all steps), denoising MSE vs. t, and how well bits/dim
separate test images from out-of-distribution inputs (AUROC)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from .cdm import CDM, dequantize
from .elbo import ELBO, ddpm_elbo


def bits_per_dim(model: nn.Module, x: Tensor, seed: int = 0, batch: int = 250, progress: bool = False) -> tuple[Tensor, str]:
    """(bits/dim per image, method) for x (N, C, H, W) on the 8-bit grid in [−1, 1]. CDM: one network pass
    on the uniformly dequantised image; other diffusion models: the DDPM bound (T passes, σ_t² = β̃_t)."""
    if isinstance(model, CDM):
        device = next(model.parameters()).device
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            out = [model.bits_per_dim(dequantize(x[i:i + batch], g).to(device)).cpu() for i in range(0, len(x), batch)]
        return torch.cat(out), "cdm one-step (Thm 3.2), dequantised"
    parts = _elbo_batches(model, x, seed, batch, progress)
    return torch.cat([p.posterior_var for p in parts]), "ddpm variational bound over all steps (σ² = β̃)"


def ddpm_bound(model: nn.Module, x: Tensor, seed: int = 0, batch: int = 500, progress: bool = True) -> dict:
    """The DDPM bound on a test set with both variance choices; the smaller mean is the model's bound."""
    parts = _elbo_batches(model, x, seed, batch, progress)
    post = torch.cat([p.posterior_var for p in parts]).mean().item()
    beta = torch.cat([p.beta for p in parts]).mean().item()
    return {"elbo_bpd": min(post, beta), "elbo_variance": "posterior (β̃_t)" if post <= beta else "β_t",
            "elbo_bpd_posterior_var": post, "elbo_bpd_beta": beta,
            "elbo_prior_bpd": torch.cat([p.prior for p in parts]).mean().item(),
            "elbo_decoder_bpd": torch.cat([p.decoder for p in parts]).mean().item(), "elbo_images": len(x)}


def _elbo_batches(model: nn.Module, x: Tensor, seed: int, batch: int, progress: bool) -> list[ELBO]:
    """ddpm_elbo over x in batches (one seeded noise stream), results on the CPU, one progress bar of steps."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    parts = []
    with tqdm(total=model.schedule.T * math.ceil(len(x) / batch), desc="ELBO steps", disable=not progress,
              leave=False) as bar:
        for i in range(0, len(x), batch):
            e = ddpm_elbo(model.eps_fn, model.schedule, x[i:i + batch].to(device), g, bar)
            parts.append(ELBO(*(v.cpu() for v in e)))
    return parts


def denoising_mse(model: nn.Module, x0: Tensor, ts: list[int], seed: int = 0, batch: int = 250) -> dict:
    """Per t: mean squared error of x̂₀ against x₀ (per pixel, [−1, 1] units) and of ε̂ against ε, on the same
    seeded noise for every model, so two checkpoints' rows compare like for like."""
    device = next(model.parameters()).device
    rows = {}
    for t in ts:
        g = torch.Generator().manual_seed(seed * 7919 + t)
        se_x0 = se_eps = 0.0
        for i in range(0, len(x0), batch):
            x = x0[i:i + batch].to(device)
            eps = torch.randn(x.shape, generator=g).to(device)
            x_t = model.schedule.noise_to(x, t, eps)
            with torch.no_grad():
                eps_hat = model.eps(x_t, t).float()
            x0_hat = model.schedule.x0_from_eps(x_t, t, eps_hat)
            se_x0 += (x0_hat - x).pow(2).flatten(1).mean(1).sum().item()
            se_eps += (eps_hat - eps).pow(2).flatten(1).mean(1).sum().item()
        rows[str(t)] = {"mse_x0": se_x0 / len(x0), "mse_eps": se_eps / len(x0)}
    return rows


# ---------- out-of-distribution inputs ---------------------------------------------------------------------

def _on_grid(x: Tensor) -> Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def random_shapes(n: int, size: int, channels: int = 1, seed: int = 0) -> Tensor:
    """n images of 1–3 filled rectangles or discs of random brightness on black (8-bit grid, [−1, 1])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, channels, size, size), np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.2, 0.8, 2) * size
            ry, rx = rng.uniform(0.1, 0.35, 2) * size
            if rng.random() < 0.5:
                mask = (abs(yy - cy) < ry) & (abs(xx - cx) < rx)
            else:
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            out[i][:, mask] = rng.uniform(0.2, 1.0)
    return _on_grid(torch.from_numpy(out) * 2 - 1)


def ood_sets(test: Tensor, n: int, seed: int = 0) -> dict[str, Tensor]:
    """Out-of-distribution inputs shaped like test (N, C, H, W): uniform noise, the test images inverted
    (dark clothes on white), and random shapes."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, *test.shape[1:])
    return {"uniform noise": _on_grid(torch.rand(shape, generator=g) * 2 - 1),
            "inverted": -test[:n],
            "random shapes": random_shapes(n, test.shape[-1], test.shape[1], seed)}


def auroc(in_scores: Tensor, out_scores: Tensor) -> float:
    """P(score_out > score_in) + ½ P(tie): the area under the ROC curve of 'higher bits/dim = OOD'
    (the Mann–Whitney statistic, exact for any number of ties)."""
    s = torch.cat([in_scores, out_scores]).double()
    ranks = _average_ranks(s)
    n_in, n_out = len(in_scores), len(out_scores)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def _average_ranks(s: Tensor) -> Tensor:
    order = torch.argsort(s)
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=s.dtype)
    for v in s.unique()[torch.unique(s, return_counts=True)[1] > 1]:   # ties share their mean rank
        ranks[s == v] = ranks[s == v].mean()
    return ranks


def histogram(values: Tensor, bins: int = 40) -> dict:
    """A compact histogram for NAME.json (the app draws the test-set distribution from it)."""
    counts, edges = np.histogram(values.numpy(), bins=bins)
    return {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}
