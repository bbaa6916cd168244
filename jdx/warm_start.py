"""Warm starts (--init): which weights of a finished checkpoint a new model copies — the same architecture
whole, a diffusion-only U-Net into a joint model or a CDM, one image MDM into another."""
from __future__ import annotations

from torch import nn

from .cdm import CDM
from .joint import DiffusionModel, JointModel
from .mdm import MDM


def init_weights(init: nn.Module, model: nn.Module, name: str) -> dict:
    """The weights --init copies: all of a checkpoint of the same architecture, or the U-Net of a
    diffusion-only model into a joint model (its head starts fresh) — diffusion pre-training on unlabelled
    images, then the joint loss on few labels."""
    if init.config_dict() == model.config_dict():
        return init.state_dict()
    if isinstance(model, JointModel) and type(init) is DiffusionModel and \
            init.config_dict() == {k: v for k, v in model.config_dict().items() if k != "head"}:
        return {**model.state_dict(), **init.state_dict()}      # the head keeps its fresh initialisation
    if isinstance(model, CDM) and type(init) is DiffusionModel:
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
