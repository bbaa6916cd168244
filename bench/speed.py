"""Training step time beside its floor, and sampling throughput (50 DDIM steps), on this machine's CPU or GPU.

    python bench/speed.py [--device cpu|cuda] [--ckpt checkpoints/fmnist-joint] [--batch 128] [--variants]
                          [--profile] [--no-sampling] [--compile]

The training step is the training loop's own (jdx.train.draw_batch + optimise: gather, augment, loss,
backward, clipping, AdamW, EMA) on synthetic uint8 images of the checkpoint's shape, with the model built from
the checkpoint's training config. The floor is the bare U-Net's forward + backward on the same batch: what
any training step of this network costs at least (a joint step runs the encoder a second time for the
classifier's batch, so its ratio is ≥ 1.5 by construction). Each time is given as wall time and, on the CPU,
as this process's CPU time — on a shared machine the CPU time is the one to compare (one thread: CPU time is
the work done; wall time adds the waits for other processes). `--variants` adds opt-in alternatives
(channels_last, no dropout, the loop's evaluation amortised per step); `--profile` prints torch.profiler's
top operators of one step."""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch

from jdx import checkpoint
from jdx.data import Dataset
from jdx.evaluate import training_metrics
from jdx.generate import generate
from jdx.device import device_label
from jdx.train import (EMA, TrainConfig, autocast, build_model, build_objective, cpu_has_bf16, draw_batch,
                       optimise, pick_device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, repeats: int, device, warmup: int = 1) -> tuple[float, float]:
    """(wall, CPU) seconds per call of fn after warm-up calls, the GPU drained before each clock read."""
    for _ in range(warmup):
        fn()
    sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - w0) / repeats, (time.process_time() - c0) / repeats


class Bench:
    """A model built from a training config, an optimiser, an EMA and synthetic data: the loop's step."""

    def __init__(self, cfg: TrainConfig, device, batch: int, channels_last: bool = False, compile_: bool = False):
        self.cfg, self.device, self.batch = cfg, device, batch
        self.model = build_model(cfg, 10).to(device).train()
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.fmt)
        self.runner = build_objective(cfg, self.model)
        if compile_:
            self.runner = torch.compile(self.runner)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=device.type == "cuda")
        self.ema = EMA(self.model, cfg.ema_decay)
        g = torch.Generator().manual_seed(0)
        n = 4096
        self.images = torch.randint(0, 256, (n, cfg.channels, cfg.image_size, cfg.image_size), generator=g,
                                    dtype=torch.uint8).to(device)
        self.labels = torch.randint(0, 10, (n,), generator=g).to(device)
        self.pool = torch.arange(n, device=device)
        self.gen = torch.Generator(device=device).manual_seed(0)
        self.step_no = 0

    def step(self):
        b = draw_batch(self.images, self.labels, self.pool, self.pool, self.batch, self.gen, self.cfg.augment)
        b = b._replace(x0=b.x0.contiguous(memory_format=self.fmt), x_lab=b.x_lab.contiguous(memory_format=self.fmt))
        optimise(self.runner, self.model, self.opt, self.ema, b, self.step_no, self.cfg.grad_clip,
                 autocast(self.device, self.cfg.amp))
        self.step_no += 1

    def floor(self):
        """The bare U-Net's forward + backward on the same batch (no second pass, no optimiser)."""
        unet = self.model.net.unet if hasattr(self.model, "net") else self.model.unet
        c = unet.config
        x = torch.randn(self.batch, c.in_channels, c.image_size, c.image_size, device=self.device)
        t = torch.randint(1, 500, (self.batch,), device=self.device) if c.time_input else None
        with autocast(self.device, self.cfg.amp):
            out = unet(x.contiguous(memory_format=self.fmt), t).out
        out.float().square().mean().backward()
        unet.zero_grad(set_to_none=True)

    def evaluation(self, n: int):
        test = Dataset(self.images[:n].cpu(), self.labels[:n].cpu(), [str(k) for k in range(10)], "synthetic")
        training_metrics(self.ema.model, test, n, self.device)
        self.model.train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ckpt", default="checkpoints/fmnist-joint")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--train-steps", type=int, default=0, help="timed steps per row (default: 3 on CPU, 50 on GPU)")
    ap.add_argument("--variants", action="store_true", help="also channels_last, no dropout, evaluation per step")
    ap.add_argument("--profile", action="store_true", help="torch.profiler's top operators of one training step")
    ap.add_argument("--no-sampling", action="store_true")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.set_grad_enabled(True)
    model = checkpoint.load(args.ckpt, device)
    tcfg = model.info.training.get("config", {})
    cfg = TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in tcfg.items()
                         if k in TrainConfig.__dataclass_fields__})
    n = args.train_steps or (50 if device.type == "cuda" else 3)
    name = device_label(device)
    params = sum(p.numel() for p in model.parameters())
    precision = "bf16" if cfg.amp and (device.type == "cuda" or cpu_has_bf16()) else "fp32"
    print(f"\n{model.info.name} ({model.kind}, {params / 1e6:.2f}M parameters) on {device.type}: {name}, "
          f"torch {torch.__version__}, {precision}, load average {os.getloadavg()[0]:.1f}\n")
    print("| what | batch | wall time | CPU time | ÷ floor (CPU) | images/s (wall) | images/s (CPU) |")
    print("|---|---|---|---|---|---|---|")
    B = args.batch
    floor = {}

    def row(what: str, wall: float, cpu: float, batch: int = B):
        if not floor:
            floor.update(wall=wall, cpu=cpu)
        ratio = cpu / floor["cpu"] if device.type == "cpu" else wall / floor["wall"]
        print(f"| {what} | {batch} | {wall * 1000:.0f} ms | {cpu * 1000:.0f} ms | {ratio:.2f} | {batch / wall:.0f} | "
              f"{batch / max(cpu, 1e-9):.0f} |", flush=True)

    bench = Bench(cfg, device, B, compile_=args.compile)
    row("floor: bare U-Net forward + backward", *time_call(bench.floor, n, device))
    wall, cpu = time_call(bench.step, n, device, warmup=10 if args.compile else 1)
    row(f"training step ({cfg.kind}, the loop's, {precision})", wall, cpu)
    if args.variants:
        cl = Bench(cfg, device, B, channels_last=True)
        row("training step, channels_last", *time_call(cl.step, n, device))
        del cl
        nd = Bench(replace(cfg, dropout=0.0, head_dropout=0.0), device, B)
        row("training step, no dropout (changes the recipe)", *time_call(nd.step, n, device))
        del nd
        m = 256
        w, c = time_call(lambda: bench.evaluation(m), 1, device, warmup=0)
        k = cfg.eval_n / m / cfg.eval_every
        row(f"loop evaluation, {cfg.eval_n} images every {cfg.eval_every} steps, per step", w * k, c * k)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            bench.step()
            sync(device)
        print("\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)
    if args.no_sampling:
        return
    for batch in (1, 64):
        s, c = time_call(lambda: generate(model, batch, steps=50), 3 if device.type == "cuda" or batch == 1 else 1, device)
        print(f"| sampling, 50 DDIM steps | {batch} | {s:.2f} s | {c:.2f} s | | {batch / s:.1f} | {batch / c:.1f} |", flush=True)
    if hasattr(model, "classify"):
        from jdx.counterfactual import counterfactual
        c = model.unet.config
        x = torch.rand(1, c.in_channels, c.image_size, c.image_size, device=device) * 2 - 1
        s, cp = time_call(lambda: model.predict(x), 20, device)
        print(f"| predict (encoder + head) | 1 | {s * 1000:.1f} ms | {cp * 1000:.1f} ms | | | |", flush=True)
        w = torch.eye(model.num_classes)[1]
        s, cp = time_call(lambda: counterfactual(model, x, w, t_star=200, scale=60, steps=25), 3, device)
        print(f"| counterfactual, t* = 200, 25 guided DDIM steps | 1 | {s:.2f} s | {cp:.2f} s | | | |", flush=True)


if __name__ == "__main__":
    main()
