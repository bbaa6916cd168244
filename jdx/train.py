"""Training loop shared by every model kind: AdamW, EMA, bf16 autocast (CPU) / AMP (CUDA), gradient
clipping, a progress bar, periodic evaluation, resumable runs with atomic saves, semi-supervised labels,
and DistributedDataParallel under torchrun (gloo on CPU, NCCL on CUDA).

Two files per run: the shipped checkpoint NAME.safetensors/.json (EMA weights) and NAME.train-state.pt
(optimizer, raw weights, step, RNG; git-ignored, what --resume reads).
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from . import checkpoint
from .augment import augment
from .cdm import CDM, CDMObjective, dequantize
from .classifier import ClassifierConfig, ClassifierObjective, FeatureClassifier
from .data import Dataset, load_dataset
from .device import autocast, cpu_has_bf16, device_name, pick_device  # noqa: F401  (re-exported: jdx.train.pick_device)
from .domains import shift_images, shifted, split_domains
from .diffusion import ScheduleConfig
from .evaluate import accuracy
from .joint import DiffusionModel, DiffusionObjective, HeadConfig, JointModel, JointObjective, LossOutput
from .mdm import DIFFUSIONS, MDM, DiffusionConfig, MDMConfig, MDMObjective
from .mdm.evaluate import test_bpd
from .unet import UNetConfig


@dataclass
class TrainConfig:
    kind: str = "joint"              # joint | ddpm | classifier | cdm | mdm
    data: str = "fashion-mnist"      # or a folder with one sub-folder of images per class
    out: str = "checkpoints/fmnist-joint"
    steps: int = 20000
    batch_size: int = 128            # global: split over torchrun processes
    lr: float = 2e-4
    weight_decay: float = 0.0        # AdamW; diffusion models are usually trained without decay
    warmup: int = 500                # linear warm-up steps, then cosine decay to 10 % of lr
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    lam: float = 1e-3                # λ of the joint loss (the paper's value)
    w_ce: float = 1e-3               # CDM: weight of the noise-level cross-entropy (the paper's value)
    labels_per_class: int = 0        # 0: every label; N: N labels per class, the rest diffusion-only
    diffusion_weight: float = 1.0    # joint: weight of ‖ε − ε̂‖²; 0 trains the same encoder + head on CE alone
    shift: str = ""                  # domain shift (invert | rotate): half the training images become an
                                     # unlabelled, shifted target; labels come from the other half only
    target_diffusion: bool = True    # with shift: the target's images join the diffusion batch
    augment: bool = True             # random flips/affine for the classifier's batch (never the diffusion batch)
    eval_every: int = 1000
    eval_n: int = 2000               # test images for the periodic evaluation
    save_every_s: float = 120.0      # a killed run loses at most this much work
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False            # torch.compile the objective (helps on CUDA)
    max_minutes: float = 0.0         # stop (and save) after this much wall time in this process; 0: no limit
    stop_at: int = 0                 # >0: stop (and save) at this step, the schedule still that of `steps`;
                                     # --resume continues (so several runs can take turns on one core)
    lr_minutes: float = 0.0          # >0: the cosine decay runs over this much training time (summed over
                                     # resumes) instead of over `steps`, so a time-boxed run still anneals
    save_dtype: str = "float32"      # float16 halves the shipped file (weights are cast back on load)
    init: str = ""                   # start from this checkpoint's weights (fresh optimizer): fine-tuning
    # multivariate diffusion (kind mdm)
    diffusion: str = "vpsde"         # vpsde | cld | alda | malda | learned
    K: int = 0                       # variables per pixel; 0: the diffusion's own (1, 2, 3, 3, 2)
    aux_var: float = 1.0             # stationary variance of the auxiliaries
    init_aux_var: float = 0.01       # q(v₀ | x) = N(0, init_aux_var)
    # model shape
    image_size: int = 28
    channels: int = 1
    base_channels: int = 32
    channel_mult: tuple = (1, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple = (2,)
    dropout: float = 0.1
    head_dropout: float = 0.3
    schedule: str = "linear"
    T: int = 500


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    if cfg.kind == "classifier":
        return FeatureClassifier(ClassifierConfig(cfg.channels, cfg.image_size, num_classes))
    unet = UNetConfig(cfg.channels, cfg.channels, cfg.image_size, cfg.base_channels, tuple(cfg.channel_mult),
                      cfg.num_res_blocks, tuple(cfg.attention_levels), cfg.dropout)
    schedule = ScheduleConfig(cfg.schedule, cfg.T)
    if cfg.kind == "cdm":
        # No time input; the last conv feeds pooling + the level head, so it keeps base_channels channels.
        unet = UNetConfig(cfg.channels, cfg.base_channels, cfg.image_size, cfg.base_channels, tuple(cfg.channel_mult),
                          cfg.num_res_blocks, tuple(cfg.attention_levels), cfg.dropout, time_input=False)
        return CDM(unet, schedule)
    if cfg.kind == "mdm":
        K = cfg.K or DIFFUSIONS.get(cfg.diffusion, 1)
        unet = UNetConfig(K * cfg.channels, K * cfg.channels, cfg.image_size, cfg.base_channels, tuple(cfg.channel_mult),
                          cfg.num_res_blocks, tuple(cfg.attention_levels), cfg.dropout)
        return MDM(MDMConfig(DiffusionConfig(cfg.diffusion, K, cfg.aux_var, cfg.init_aux_var), unet))
    if cfg.kind == "ddpm":
        return DiffusionModel(unet, schedule)
    if cfg.kind == "joint":
        return JointModel(unet, schedule, HeadConfig(num_classes, cfg.head_dropout))
    raise ValueError(f"unknown model kind {cfg.kind!r}")


def build_objective(cfg: TrainConfig, model: nn.Module) -> nn.Module:
    return {"classifier": lambda: ClassifierObjective(model), "ddpm": lambda: DiffusionObjective(model),
            "joint": lambda: JointObjective(model, cfg.lam, cfg.diffusion_weight),
            "cdm": lambda: CDMObjective(model, cfg.w_ce), "mdm": lambda: MDMObjective(model)}[cfg.kind]()


class EMA:
    """Exponential moving average of the weights: θ̄ ← d·θ̄ + (1 − d)·θ. Buffers (BatchNorm statistics) are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))   # short runs: do not average in the random init
        # foreach: one kernel launch for all tensors instead of one per tensor (launch-bound on GPUs)
        torch._foreach_lerp_(list(self.model.parameters()), [p.detach() for p in model.parameters()], 1 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


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


@torch.no_grad()
def evaluate(model: nn.Module, test: Dataset, n: int, device: torch.device, batch: int = 500,
             shift: str = "") -> dict:
    """Accuracy at t = 0 (classifiers; with a domain shift also on the shifted test set) and the diffusion
    loss on fixed noise (diffusion models), on the first n test images."""
    model.eval()
    subset = Dataset(test.images[:n], test.labels[:n], test.class_names, test.name)
    out = {}
    if isinstance(model, (JointModel, FeatureClassifier)):
        out["test_accuracy"] = accuracy(model, subset, batch=batch)
        if shift:
            out["target_accuracy"] = accuracy(model, shifted(subset, shift), batch=batch)
    if isinstance(model, DiffusionModel):
        g = torch.Generator().manual_seed(1234)
        total = 0.0
        for i in range(0, len(subset), batch):
            x0 = subset.to_model(slice(i, i + batch)).to(device)
            t = torch.randint(1, model.schedule.T + 1, (len(x0),), generator=g).to(device)
            eps = torch.randn(x0.shape, generator=g).to(device)
            eps_hat = model.eps(model.schedule.noise_to(x0, t, eps), t)
            total += F.mse_loss(eps_hat.float(), eps, reduction="sum").item() / eps[0].numel()
        out["test_diffusion_loss"] = total / len(subset)
    if isinstance(model, MDM):
        out["test_bpd"] = test_bpd(model, subset.to_model(), repeats=1, batch=batch, seed=1234, progress=False)["test_bpd"]
    if isinstance(model, CDM):
        g = torch.Generator().manual_seed(1234)
        bpd = [model.bits_per_dim(dequantize(subset.to_model(slice(i, i + batch)), g).to(device)).sum().item()
               for i in range(0, len(subset), batch)]
        out["test_bpd"] = sum(bpd) / len(subset)
    out["eval_images"] = len(subset)
    return out


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
                metrics = evaluate(ema.model, test_set, cfg.eval_n, device, shift=cfg.shift)
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
                    history.append({"step": step, "metrics": evaluate(ema.model, test_set, cfg.eval_n, device, shift=cfg.shift),
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


def init_weights(init: nn.Module, model: nn.Module, name: str) -> dict:
    """The weights --init copies: all of a checkpoint of the same architecture, or the U-Net of a
    diffusion-only model into a joint model (its head starts fresh) — diffusion pre-training on unlabelled
    images, then the joint loss on few labels."""
    if init.config_dict() == model.config_dict():
        return init.state_dict()
    if isinstance(model, JointModel) and type(init) is DiffusionModel and \
            init.config_dict() == {k: v for k, v in model.config_dict().items() if k != "head"}:
        return {**model.state_dict(), **init.state_dict()}      # the head keeps its fresh initialisation
    if getattr(model, "kind", "") == "cdm" and type(init) is DiffusionModel:
        return cdm_from_denoiser(init, model, name)
    if isinstance(model, MDM) and isinstance(init, MDM) and model.is_image and init.is_image:
        return mdm_from_mdm(init, model, name)
    raise ValueError(f"--init {name}: its architecture differs from the one asked for; pass the same "
                     "model options as its training command")


def cdm_from_denoiser(init: nn.Module, model: nn.Module, name: str) -> dict:
    """Warm start for the CDM: a diffusion-only U-Net already maps x_t to features that know the noise, so
    every tensor that exists in both (same name, same shape) is copied; the time embedding (the CDM has no
    time input), the output conv (the CDM outputs features, not ε) and the level head keep their init."""
    mine, theirs = model.state_dict(), init.state_dict()
    same = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    unet = [k for k in mine if k.startswith("unet.")]
    if sum(k in same for k in unet) < 0.9 * len(unet):
        raise ValueError(f"--init {name}: fewer than 90 % of the CDM's U-Net tensors match its U-Net; "
                         "pass the same --base-channels/--channel-mult/--num-res-blocks/--attention-levels")
    return {**mine, **same}


def mdm_from_mdm(init: nn.Module, model: nn.Module, name: str) -> dict:
    """Warm start of one image MDM from another (e.g. learned, CLD or MALDA from VP-SDE): both score
    networks predict ε̂ for K stacked variables with the same U-Net, so every network tensor of the same name
    and shape is copied. The input and output convolutions have K·C channels (variable-major: the data
    variable's C channels first); there the data variable's channels are copied and the auxiliaries' keep
    their init. The diffusion's own parameters (Q, D, …) always keep the asked diffusion's init."""
    mine, theirs = model.state_dict(), init.state_dict()
    C = model.net.unet.config.in_channels // model.diffusion.K
    if C != init.net.unet.config.in_channels // init.diffusion.K:
        raise ValueError(f"--init {name}: its images have a different number of channels")
    out = dict(mine)
    for k, v in theirs.items():
        if not k.startswith("net.") or k not in mine:
            continue
        if mine[k].shape == v.shape:
            out[k] = v
        elif k.endswith("conv_in.weight") and mine[k].shape[2:] == v.shape[2:]:
            out[k] = mine[k].clone()
            out[k][:, :C] = v[:, :C]                   # (out, K·C, 3, 3): the data variable's input channels
        elif k.startswith("net.unet.out.") and mine[k].shape[1:] == v.shape[1:]:
            out[k] = mine[k].clone()
            out[k][:C] = v[:C]                         # (K·C, …): ε̂ of the data variable
    net = [k for k in mine if k.startswith("net.")]
    if sum(out[k] is theirs.get(k) for k in net) < 0.9 * len(net):
        raise ValueError(f"--init {name}: fewer than 90 % of the network's tensors match; pass the same "
                         "--base-channels/--channel-mult/--num-res-blocks/--attention-levels")
    return out


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
