"""What a likelihood and a denoising step cost: CDM's one-pass bits/dim (Thm 3.2) against the DDPM bound over
all T steps, and CDM's gradient ε̂ (a forward and a backward pass) against the U-Net's direct ε̂.

    python bench/likelihood.py [--device cpu|cuda] [--cdm checkpoints/fmnist-cdm] [--ddpm checkpoints/fmnist-ddpm]

Prints a Markdown table (seconds per call, after a warm-up)."""
from __future__ import annotations

import argparse

import torch

from jdx import checkpoint
from jdx.cdm import dequantize
from jdx.elbo import ddpm_elbo
from jdx.device import device_label, pick_device

from speed import time_call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cdm", default="checkpoints/fmnist-cdm")
    ap.add_argument("--ddpm", default="checkpoints/fmnist-ddpm")
    args = ap.parse_args()
    device = pick_device(args.device)
    cdm, ddpm = checkpoint.load(args.cdm, device), checkpoint.load(args.ddpm, device)
    where = device_label(device)
    print(f"torch {torch.__version__}, {where}\n")
    print("| what | batch | time |\n|---|---|---|")
    c = cdm.unet.config
    for batch in (1, 64):
        x = (torch.randint(0, 256, (batch, c.in_channels, c.image_size, c.image_size)).float() / 127.5 - 1)
        xd = dequantize(x, torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            s = time_call(lambda: cdm.bits_per_dim(xd), 5, device)
        print(f"| CDM bits/dim, one pass (Thm 3.2) | {batch} | {s * 1000:.1f} ms |", flush=True)
        s = time_call(lambda: ddpm_elbo(ddpm.eps_fn, ddpm.schedule, x.to(device)), 1, device, warmup=0)
        print(f"| DDPM bound, all {ddpm.schedule.T} steps | {batch} | {s:.2f} s |", flush=True)
        x_t = torch.randn(batch, c.in_channels, c.image_size, c.image_size, device=device)
        s = time_call(lambda: cdm.eps(x_t, 200), 5, device)
        print(f"| CDM ε̂ = √(1−ᾱ)(∇F + x): forward + backward | {batch} | {s * 1000:.1f} ms |", flush=True)
        with torch.no_grad():
            s = time_call(lambda: ddpm.eps(x_t, 200), 5, device)
        print(f"| DDPM ε̂: forward | {batch} | {s * 1000:.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
