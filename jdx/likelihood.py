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


# ---------- unfamiliar inputs a person would try (drawn here, never seen in training) ----------------------

def _pil_batch(images: list, size: int, channels: int, prepare: bool) -> Tensor:
    """PIL images → (N, C, size, size) model tensors; with prepare, through the upload pipeline (as the
    app and CLI see an uploaded file), else resized as they are."""
    from .data import prepare_image
    out = []
    for img in images:
        if prepare:
            px = prepare_image(img, size, channels).pixels
        else:
            a = np.asarray(img.convert("L" if channels == 1 else "RGB").resize((size, size), 1), np.uint8)
            px = torch.from_numpy((a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy())
        out.append(px)
    return torch.stack(out).float() / 127.5 - 1


def digits(n: int, size: int = 28, channels: int = 1, seed: int = 0) -> Tensor:
    """Handwriting-like digits 0–9 in a few fonts, bright on black, jittered in size, place and slant."""
    from PIL import Image, ImageDraw, ImageFont
    rng = np.random.default_rng(seed)
    fonts = [f for f in ("DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSans.ttf", "DejaVuSansMono-Bold.ttf")]
    imgs = []
    for i in range(n):
        big = Image.new("L", (112, 112), 0)
        try:
            font = ImageFont.truetype(fonts[i % len(fonts)], int(rng.integers(70, 100)))
        except OSError:
            font = ImageFont.load_default(size=int(rng.integers(70, 100)))
        ImageDraw.Draw(big).text((56 + rng.integers(-8, 9), 56 + rng.integers(-8, 9)), str(i % 10), fill=255,
                                 font=font, anchor="mm")
        imgs.append(big.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR))
    return _pil_batch(imgs, size, channels, prepare=False)


def block_noise(n: int, size: int = 28, channels: int = 1, block: int = 4, seed: int = 0) -> Tensor:
    """Uniform noise on a coarse grid of block × block pixels."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, channels, -(-size // block), -(-size // block)), generator=g)
    return _on_grid(coarse.repeat_interleave(block, 2).repeat_interleave(block, 3)[..., :size, :size] * 2 - 1)


def constants(n: int, size: int = 28, channels: int = 1) -> Tensor:
    """Constant images from black to white."""
    return _on_grid(torch.linspace(-1, 1, n).view(n, 1, 1, 1).expand(n, channels, size, size).clone())


def sketches(n: int, size: int = 28, channels: int = 1, seed: int = 0) -> Tensor:
    """Pen sketches on white paper (houses, faces, stars, scribbles), through the upload pipeline."""
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    imgs = []
    for i in range(n):
        img = Image.new("L", (128, 128), int(rng.integers(225, 256)))
        d = ImageDraw.Draw(img)
        w = int(rng.integers(2, 5))
        kind = i % 4
        if kind == 0:      # a house
            x0, y0 = rng.integers(20, 40, 2)
            x1, y1 = x0 + rng.integers(50, 80), y0 + rng.integers(40, 70) + 25
            d.rectangle((x0, y0 + 25, x1, y1), outline=0, width=w)
            d.line((x0, y0 + 25, (x0 + x1) // 2, y0, x1, y0 + 25), fill=0, width=w)
        elif kind == 1:    # a face
            c, r = rng.integers(50, 78), int(rng.integers(30, 45))
            d.ellipse((c - r, c - r, c + r, c + r), outline=0, width=w)
            d.ellipse((c - r // 2 - 3, c - r // 3 - 3, c - r // 2 + 3, c - r // 3 + 3), fill=0)
            d.ellipse((c + r // 2 - 3, c - r // 3 - 3, c + r // 2 + 3, c - r // 3 + 3), fill=0)
            d.arc((c - r // 2, c - r // 4, c + r // 2, c + r // 2), 20, 160, fill=0, width=w)
        elif kind == 2:    # a star
            c, r = 64 + rng.integers(-10, 11, 2), rng.uniform(35, 55)
            a = np.linspace(0, 4 * np.pi, 6) + rng.uniform(0, np.pi)
            d.line([(float(c[0] + r * np.cos(t)), float(c[1] + r * np.sin(t))) for t in a], fill=0, width=w)
        else:              # a scribble
            pts = np.cumsum(rng.normal(0, 12, (12, 2)), 0) + 64
            d.line([tuple(p) for p in np.clip(pts, 8, 120).tolist()], fill=0, width=w, joint="curve")
        imgs.append(img)
    return _pil_batch(imgs, size, channels, prepare=True)


def object_photos(n: int, size: int = 28, channels: int = 1, seed: int = 0) -> Tensor:
    """Photo-like pictures of things that are not garments — a ball, a mug, a fruit bowl, a lamp, a face —
    shaded, on textured backgrounds of random brightness (light ones are inverted by the pipeline)."""
    from PIL import Image, ImageDraw, ImageFilter
    rng = np.random.default_rng(seed)
    imgs = []
    yy, xx = np.mgrid[:128, :128] / 128.0
    for i in range(n):
        base = rng.uniform(40, 230)
        bg = base + 30 * (xx * rng.normal() + yy * rng.normal()) + rng.normal(0, 6, (128, 128))
        img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "L")
        d = ImageDraw.Draw(img)
        kind = i % 5
        tone = int(np.clip(base + rng.choice([-1, 1]) * rng.uniform(60, 110), 0, 255))
        c = 64 + rng.integers(-12, 13, 2)
        if kind == 0:      # a ball
            r = int(rng.integers(25, 45))
            d.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), fill=tone)
        elif kind == 1:    # a mug
            d.rectangle((c[0] - 25, c[1] - 30, c[0] + 20, c[1] + 30), fill=tone)
            d.arc((c[0] + 10, c[1] - 15, c[0] + 40, c[1] + 15), 270, 90, fill=tone, width=6)
        elif kind == 2:    # fruit
            for _ in range(int(rng.integers(3, 6))):
                p, r = c + rng.integers(-30, 31, 2), int(rng.integers(10, 20))
                d.ellipse((p[0] - r, p[1] - r, p[0] + r, p[1] + r), fill=int(np.clip(tone + rng.normal(0, 30), 0, 255)))
        elif kind == 3:    # a lamp
            d.polygon([(c[0] - 30, c[1] - 10), (c[0] + 30, c[1] - 10), (c[0] + 15, c[1] - 45), (c[0] - 15, c[1] - 45)], fill=tone)
            d.rectangle((c[0] - 3, c[1] - 10, c[0] + 3, c[1] + 40), fill=tone)
            d.rectangle((c[0] - 20, c[1] + 40, c[0] + 20, c[1] + 48), fill=tone)
        else:              # a face
            d.ellipse((c[0] - 30, c[1] - 40, c[0] + 30, c[1] + 40), fill=tone)
            for s in (-1, 1):
                d.ellipse((c[0] + s * 12 - 5, c[1] - 15, c[0] + s * 12 + 5, c[1] - 7), fill=int(255 - tone))
            d.arc((c[0] - 15, c[1] + 5, c[0] + 15, c[1] + 25), 20, 160, fill=int(255 - tone), width=3)
        a = np.asarray(img.filter(ImageFilter.GaussianBlur(1.2)), np.float64)
        a = a * (1 - 0.3 * np.clip(xx - rng.uniform(0.3, 0.9), 0, 1)) + rng.normal(0, 4, a.shape)  # a shadow, grain
        imgs.append(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L"))
    return _pil_batch(imgs, size, channels, prepare=True)


def unfamiliar_sets(test: Tensor, n: int, seed: int = 0) -> dict[str, Tensor]:
    """The OOD sets of the AUROC table, shaped like test (N, C, H, W)."""
    C, H = test.shape[1], test.shape[-1]
    sets = ood_sets(test, n, seed)
    sets.update({"4×4 block noise": block_noise(n, H, C, 4, seed), "constant": constants(n, H, C),
                 "digits": digits(n, H, C, seed), "sketches": sketches(n, H, C, seed),
                 "object photos": object_photos(n, H, C, seed)})
    return sets
