"""Training loop shared by every model kind: AdamW, EMA, bf16 autocast (CPU) / AMP (CUDA), gradient
clipping, a progress bar, periodic evaluation, resumable runs with atomic saves, semi-supervised labels,
and DistributedDataParallel under torchrun (gloo on CPU, NCCL on CUDA).

Two files per run: the shipped checkpoint NAME.safetensors/.json (EMA weights) and NAME.train-state.pt
(optimizer, raw weights, step, RNG; git-ignored, what --resume reads).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from . import checkpoint
from .augment import augment
from .data import load_dataset
from .device import autocast, cpu_has_bf16, device_name, pick_device  # noqa: F401  (re-exported: jdx.train.pick_device)
from .domains import shift_images, split_domains
from .ema import EMA
from .evaluate import training_metrics
from .results import LossOutput
from .train_config import TrainConfig, build_model, build_objective
from .warm_start import init_weights

__all__ = ["TrainConfig", "build_model", "build_objective", "EMA", "init_weights", "pick_device", "train",
           "labelled_indices", "lr_at", "draw_batch", "optimise"]


def labelled_indices(labels: Tensor, per_class: int, seed: int) -> Tensor:
    """All indices, or a seeded choice of per_class indices from each class."""
    if per_class <= 0:
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for k in labels.unique().tolist():
        idx = (labels == k).nonzero().flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {k} has only {len(idx)} images, fewer than --labels-per-class {per_class}")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(chosen)


def lr_at(cfg: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.lr_minutes > 0:
        progress = max(progress, min(1.0, elapsed_s / (60 * cfg.lr_minutes)))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _dist_info() -> tuple[int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def train(cfg: TrainConfig, resume: bool = False, command: str = "", quiet: bool = False) -> Path:
    """Train cfg.kind on cfg.data; returns the checkpoint stem. Resumes from NAME.train-state.pt if asked."""
    rank, world = _dist_info()
    device = pick_device(cfg.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} is not divisible by {world} processes")
    local_batch = cfg.batch_size // world
    torch.manual_seed(cfg.seed + rank)

    train_set = load_dataset(cfg.data, "train", cfg.image_size, cfg.channels)
    test_set = load_dataset(cfg.data, "test", cfg.image_size, cfg.channels)
    images, labels = train_set.images, train_set.labels
    pool = torch.arange(len(images))          # images the diffusion loss sees
    source = pool                             # images labels may come from
    if cfg.shift:
        source, target = split_domains(len(images), cfg.seed)
        images = images.clone()
        images[target] = shift_images(images[target], cfg.shift)
        pool = pool if cfg.target_diffusion else source
    labelled = source[labelled_indices(labels[source], cfg.labels_per_class, cfg.seed)].to(device)
    pool = pool.to(device)
    images, labels = images.to(device), labels.to(device)      # uint8 on the training device

    model = build_model(cfg, len(train_set.class_names)).to(device)
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=device.type == "cuda")
    stem = checkpoint.stem_of(cfg.out)
    state_path = stem.with_suffix(".train-state.pt")
    step, elapsed, history, commands = 0, 0.0, [], []
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"--resume: no training state at {state_path}")
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]
        history, commands = list(state.get("history", [])), list(state.get("commands", []))
        torch.manual_seed(cfg.seed + rank + step)  # fresh but reproducible noise after a resume
    elif cfg.init:
        # Fine-tune: the (EMA) weights of a finished checkpoint, a fresh optimizer and schedule.
        init = checkpoint.load(cfg.init, device)
        weights = init_weights(init, model, cfg.init)
        model.load_state_dict(weights)
        ema.model.load_state_dict(weights)
        history = [{"init": str(cfg.init), "init_kind": init.kind, "init_config": _jsonable(init.config_dict()),
                    "init_steps": init.info.training.get("steps"), "init_metrics": init.info.metrics,
                    "init_training": init.info.training.get("commands", [])}]
    commands.append(command)

    objective = build_objective(cfg, model)
    runner = objective
    if world > 1:
        runner = nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        if cfg.kind == "cdm":
            raise ValueError("--compile does not support the CDM loss (torch.compile has no double backward)")
        runner = torch.compile(runner)
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + rank + step)

    data_meta = {"name": train_set.name, "source": cfg.data, "image_size": cfg.image_size, "channels": cfg.channels,
                 "class_names": train_set.class_names, "range": [-1, 1],
                 "normalisation": "x = pixel / 127.5 - 1 (pixel in 0..255); user images: grey, padded square, "
                                  "Lanczos-resized, inverted when the background is light (data show bright objects on black)"}

    def save() -> None:
        if rank != 0:
            return
        metrics = history[-1].get("metrics", {}) if history else {}
        training = {"command": command, "commands": commands, "steps": step, "wall_time_s": round(elapsed, 1),
                    "device": device_name(device), "processes": world, "config": _jsonable(asdict(cfg)),
                    "history": history}
        checkpoint.save(ema.model, stem, data_meta, training, {**metrics, "step": step},
                        dtype=getattr(torch, cfg.save_dtype))
        state = {"model": model.state_dict(), "ema": ema.model.state_dict(), "opt": opt.state_dict(),
                 "step": step, "elapsed": elapsed, "history": history, "commands": commands}
        checkpoint.atomic_write(state_path, lambda tmp: torch.save(state, tmp))

    bar = tqdm(total=cfg.steps, initial=step, disable=quiet or rank != 0, dynamic_ncols=True, desc=f"train {cfg.kind}")
    t_begin = t_last = last_save = time.time()
    steps_timed = 0
    run_loss = run_acc = None
    model.train()
    try:
        while step < cfg.steps:
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step, elapsed)
            batch = draw_batch(images, labels, pool, labelled, local_batch, gen, cfg.augment)
            out = optimise(runner, model, opt, ema, batch, step, cfg.grad_clip, autocast(device, cfg.amp))
            step += 1
            steps_timed += 1
            # Smoothed figures for the bar; .item() syncs, so only every 10 steps.
            if step % 10 == 0 or step == cfg.steps:
                loss, acc = out.loss.item(), out.correct.item() / max(out.count, 1)
                run_loss = loss if run_loss is None else 0.9 * run_loss + 0.1 * loss
                run_acc = acc if run_acc is None else 0.9 * run_acc + 0.1 * acc
                now = time.time()
                bar.set_postfix(loss=f"{run_loss:.4f}", acc=f"{run_acc:.3f}" if out.count else "-",
                                sps=f"{steps_timed / max(now - t_begin, 1e-9):.1f}")
                bar.update(step - bar.n)
            if rank == 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
                metrics = training_metrics(ema.model, test_set, cfg.eval_n, device, shift=cfg.shift)
                history.append({"step": step, "metrics": metrics, "train_loss": run_loss})
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                       for k, v in metrics.items()))
                model.train()
            now = time.time()
            elapsed += now - t_last       # wall time summed over resumed runs
            t_last = now
            out_of_time = cfg.max_minutes > 0 and now - t_begin > 60 * cfg.max_minutes
            paused = 0 < cfg.stop_at <= step
            if now - last_save > cfg.save_every_s or step == cfg.steps or out_of_time or paused:
                if out_of_time and rank == 0 and (not history or history[-1].get("step") != step):
                    history.append({"step": step, "metrics": training_metrics(ema.model, test_set, cfg.eval_n, device, shift=cfg.shift),
                                    "train_loss": run_loss, "stopped": "max_minutes"})
                save()
                last_save = time.time()
            if out_of_time:
                bar.write(f"--max-minutes {cfg.max_minutes} reached at step {step}; saved. Continue with --resume.")
                break
            if paused:
                bar.write(f"--stop-at {cfg.stop_at} reached; saved. Continue with --resume.")
                break
    finally:
        bar.close()
        if world > 1:
            dist.destroy_process_group()
    return stem


class Batch(NamedTuple):
    x0: Tensor          # the diffusion batch, in [−1, 1]
    x_lab: Tensor       # the classifier's batch (augmented), in [−1, 1]
    y: Tensor           # its labels


def draw_batch(images: Tensor, labels: Tensor, pool: Tensor, labelled: Tensor, batch: int,
               gen: torch.Generator, augmented: bool) -> Batch:
    """One training batch gathered from uint8 images already on the training device (no DataLoader: at
    28×28 a gather costs microseconds next to the step)."""
    idx = pool[torch.randint(0, len(pool), (batch,), device=pool.device, generator=gen)]
    lab = labelled[torch.randint(0, len(labelled), (batch,), device=pool.device, generator=gen)]
    x_lab = images[lab].float() / 127.5 - 1
    return Batch(images[idx].float() / 127.5 - 1, augment(x_lab, gen) if augmented else x_lab, labels[lab])


def optimise(runner: nn.Module, model: nn.Module, opt: torch.optim.Optimizer, ema: "EMA", batch: Batch,
             step: int, grad_clip: float, precision) -> LossOutput:
    """One optimisation step: loss, backward, gradient clipping, AdamW, EMA update."""
    with precision:
        out = runner(*batch)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    ema.update(model, step)
    return out


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
