"""What one training run builds: TrainConfig (model kind, shape, objective weights, schedule of the run) and
the two factories that turn it into a model and its training objective (the registry of trainable kinds)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .cdm import CDM, CDMObjective
from .classifier import ClassifierConfig, ClassifierObjective, FeatureClassifier
from .diffusion import ScheduleConfig
from .joint import DiffusionModel, DiffusionObjective, HeadConfig, JointModel, JointObjective
from .mdm import DIFFUSIONS, MDM, DiffusionConfig, MDMConfig, MDMObjective
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
    mixed_var: float = 0.0           # mdm: > 0, the net corrects the exact ε̂ of N(0, mixed_var) data (MDM.eps)
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
        return MDM(MDMConfig(DiffusionConfig(cfg.diffusion, K, cfg.aux_var, cfg.init_aux_var), unet,
                             mixed_var=cfg.mixed_var))
    if cfg.kind == "ddpm":
        return DiffusionModel(unet, schedule)
    if cfg.kind == "joint":
        return JointModel(unet, schedule, HeadConfig(num_classes, cfg.head_dropout))
    raise ValueError(f"unknown model kind {cfg.kind!r}")


def build_objective(cfg: TrainConfig, model: nn.Module) -> nn.Module:
    return {"classifier": lambda: ClassifierObjective(model), "ddpm": lambda: DiffusionObjective(model),
            "joint": lambda: JointObjective(model, cfg.lam, cfg.diffusion_weight),
            "cdm": lambda: CDMObjective(model, cfg.w_ce), "mdm": lambda: MDMObjective(model)}[cfg.kind]()
