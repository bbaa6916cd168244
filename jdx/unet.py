"""A DDPM U-Net that returns its intermediate feature maps by block.

Blocks are numbered through encoder → bottleneck → decoder (the numbering of the diffusion-features
paper): `UNet.block_names` says which is which, `UNetOutput.features[i]` is block i's output.
The joint model's classifier reads the encoder blocks and the bottleneck; the probes (issue 6) read any.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


@dataclass
class UNetConfig:
    in_channels: int = 1                  # 1 for grey-scale, 3 for RGB (CDM/MDM add auxiliary channels)
    out_channels: int = 1                 # ε̂ has the input's shape
    image_size: int = 28                  # must be divisible by 2^(len(channel_mult) − 1)
    base_channels: int = 32               # 64 in the joint-diffusion authors' recipe; 32 keeps CPU use interactive
    channel_mult: tuple = (1, 2, 2)       # one level per entry; 28 → 14 → 7 for Fashion-MNIST
    num_res_blocks: int = 2               # per level; the authors use 3
    attention_levels: tuple = (2,)        # self-attention only at low resolution (7×7): at 28×28 it dominates CPU time
    dropout: float = 0.1                  # inside residual blocks
    time_input: bool = True               # CDM's noise-level classifier has no time input

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("channel_mult", "attention_levels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sinusoidal embedding of integer times t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, add the time embedding, GroupNorm → SiLU → dropout → conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int | None, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out)) if emb_dim else None
        self.out_layers = nn.Sequential(norm(c_out), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        h = self.in_layers(x)
        if self.emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention over the H·W positions of a feature map."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        _, _, H, W = x.shape
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three h d) x y -> three b h (x y) d", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H·W, d)
        return x + self.proj(rearrange(out, "b h (x y) d -> b (h d) x y", x=H, y=W))


class Block(nn.Module):
    """A residual block optionally followed by attention: the unit whose output is a 'feature block'."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int | None, dropout: float, attention: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, dropout)
        self.attn = Attention(c_out) if attention else None

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UpBlock(nn.Module):
    """Decoder unit: concatenate the matching skip, a residual (+ attention) block, optional upsampling."""

    def __init__(self, c_in: int, c_out: int, emb_dim, dropout, attention: bool, upsample: bool):
        super().__init__()
        self.block = Block(c_in, c_out, emb_dim, dropout, attention)
        self.up = Upsample(c_out) if upsample else None

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        h = self.block(x, emb)
        return self.up(h) if self.up is not None else h


class UNetOutput(NamedTuple):
    out: Tensor                  # (B, out_channels, H, W): ε̂ for a diffusion model
    features: list[Tensor]       # one map per block, in `UNet.block_names` order (empty unless asked)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = c = config
        levels = len(c.channel_mult)
        if c.image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {c.image_size} is not divisible by 2^{levels - 1}")
        ch = c.base_channels
        emb_dim = 4 * ch if c.time_input else None
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)) if emb_dim else None

        # Encoder: conv_in, then num_res_blocks blocks per level, a downsample between levels.
        self.conv_in = nn.Conv2d(c.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels, names = [ch], ["enc0 conv_in"]
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                self.down.append(Block(ch, c.base_channels * mult, emb_dim, c.dropout, level in c.attention_levels))
                ch = c.base_channels * mult
                skip_channels.append(ch)
                names.append(f"enc{len(names)} L{level} res")
            if level < levels - 1:
                self.down.append(Downsample(ch))
                skip_channels.append(ch)
                names.append(f"enc{len(names)} L{level} down")
        self.encoder_channels = list(skip_channels)

        self.mid = nn.ModuleList([Block(ch, ch, emb_dim, c.dropout, True), Block(ch, ch, emb_dim, c.dropout, False)])
        names.append("mid")
        self.mid_channels = ch

        # Decoder mirrors the encoder: num_res_blocks + 1 units per level, each eating one skip.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                c_skip = skip_channels.pop()
                c_out = c.base_channels * mult
                upsample = level > 0 and i == c.num_res_blocks
                self.up.append(UpBlock(ch + c_skip, c_out, emb_dim, c.dropout, level in c.attention_levels, upsample))
                ch = c_out
                names.append(f"dec{len(names) - len(self.encoder_channels) - 1} L{level}" + (" up" if upsample else ""))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, c.out_channels, 3, padding=1))
        self.block_names = names

    @property
    def num_encoder_blocks(self) -> int:
        return len(self.encoder_channels)

    def embed(self, t: Tensor | None) -> Tensor | None:
        if self.time_embed is None:
            return None
        return self.time_embed(timestep_embedding(t, self.config.base_channels))

    def encode(self, x: Tensor, t: Tensor | None) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """Encoder and bottleneck only — all the joint classifier needs (about half the cost of forward)."""
        emb = self.embed(t)
        h = self.conv_in(x)                      # (B, C, H, W)
        skips = [h]
        for module in self.down:
            h = module(h, emb)                   # (B, C_l, H/2^l, W/2^l)
            skips.append(h)
        for module in self.mid:
            h = module(h, emb)                   # (B, C_L, H/2^L, W/2^L): the bottleneck
        return skips, h, emb

    def decode(self, skips: list[Tensor], h: Tensor, emb: Tensor | None, features: list[Tensor] | None = None) -> Tensor:
        """The decoder on encode()'s outputs → the output map; appends each decoder block's map to `features`.
        Apart from forward so that a caller can keep autograd to the encoder (classifier guidance needs only it)."""
        skips = list(skips)
        for module in self.up:
            h = module(torch.cat([h, skips.pop()], dim=1), emb)
            if features is not None:
                features.append(h)
        return self.out(h)

    def forward(self, x: Tensor, t: Tensor | None = None, return_features: bool = False) -> UNetOutput:
        skips, h, emb = self.encode(x, t)
        features = [*skips, h] if return_features else None
        return UNetOutput(self.decode(skips, h, emb, features), features or [])
