"""Training step time and sampling throughput (50 DDIM steps) on this machine's CPU or GPU.

    python bench/speed.py [--device cpu|cuda] [--ckpt checkpoints/fmnist-joint] [--compile]

Prints a Markdown table: one row per (what, batch). Training uses synthetic data of the checkpoint's shape
(the data pipeline is a uint8 gather on the device, negligible next to the step)."""
from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace

import torch

from jdx import checkpoint
from jdx.generate import generate
from jdx.train import TrainConfig, autocast, cpu_has_bf16, build_model, build_objective, pick_device


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_train(cfg: TrainConfig, device, batch: int, steps: int, compile_: bool) -> float:
    model = build_model(replace(cfg, batch_size=batch), 10).to(device).train()
    runner = build_objective(cfg, model)
    if compile_:
        runner = torch.compile(runner)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, cfg.channels, cfg.image_size, cfg.image_size, device=device) * 2 - 1
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with autocast(device, cfg.amp):
            out = runner(x, x, y)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    return time_call(step, steps, device, warmup=10 if compile_ else 3)


def time_call(fn, repeats: int, device, warmup: int = 1) -> float:
    """Mean seconds per call of fn after warm-up calls, with the GPU drained before each clock read."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ckpt", default="checkpoints/fmnist-joint")
    ap.add_argument("--train-steps", type=int, default=0, help="default: 5 on CPU, 50 on GPU")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.set_grad_enabled(True)
    model = checkpoint.load(args.ckpt, device)
    tcfg = model.info.training.get("config", {})
    cfg = TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in tcfg.items()
                         if k in TrainConfig.__dataclass_fields__})
    n = args.train_steps or (50 if device.type == "cuda" else 5)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'} ({torch.get_num_threads()} threads)"
    params = sum(p.numel() for p in model.parameters())
    print(f"\n{model.info.name} ({model.kind}, {params / 1e6:.2f}M parameters) on {device.type}: {name}, torch {torch.__version__}\n")
    print("| what | batch | time | throughput |")
    print("|---|---|---|---|")
    for batch in (128,):
        s = time_train(cfg, device, batch, n, args.compile)
        precision = "bf16" if cfg.amp and (device.type == "cuda" or cpu_has_bf16()) else "fp32"
        print(f"| training step ({precision}) | {batch} | {s * 1000:.0f} ms | {batch / s:.0f} images/s |", flush=True)
    for batch in (1, 64):
        s = time_call(lambda: generate(model, batch, steps=50), 3 if device.type == "cuda" or batch == 1 else 1, device)
        print(f"| sampling, 50 DDIM steps | {batch} | {s:.2f} s | {batch / s:.1f} images/s |", flush=True)
    if hasattr(model, "classify"):
        from jdx.counterfactual import counterfactual
        c = model.unet.config
        x = torch.rand(1, c.in_channels, c.image_size, c.image_size, device=device) * 2 - 1
        s = time_call(lambda: model.predict(x), 20, device)
        print(f"| predict (encoder + head) | 1 | {s * 1000:.1f} ms | |", flush=True)
        w = torch.eye(model.num_classes)[1]
        s = time_call(lambda: counterfactual(model, x, w, t_star=200, scale=60, steps=25), 3, device)
        print(f"| counterfactual, t* = 200, 25 guided DDIM steps | 1 | {s:.2f} s | |", flush=True)


if __name__ == "__main__":
    main()
