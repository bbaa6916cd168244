"""Photo-like test images of garments (assets/photos/): Fashion-MNIST test images (never trained on)
upscaled, inverted to dark-on-light like product photos, and composited onto light, textured, unevenly lit
backgrounds with a drop shadow, at random offsets and scales. labels.json maps file → class.

    python3 scripts/make_photos.py --n 30 --out assets/photos
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from jdx.data import load_fashion_mnist


def photo(v: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """v: (28, 28) uint8 Fashion-MNIST image → an RGB photo-like picture, about 200×240 px."""
    H, W = int(rng.integers(180, 260)), int(rng.integers(180, 260))
    yy, xx = np.mgrid[:H, :W] / max(H, W)
    base = rng.uniform(175, 235)
    light = 25 * (xx * rng.normal() + yy * rng.normal())                       # uneven lighting
    period = rng.uniform(6, 20)
    texture = 6 * np.sin(2 * np.pi * (xx * W * rng.uniform(0.3, 1) + yy * H * rng.uniform(0, 0.3)) / period)
    bg = base + light + texture + rng.normal(0, 5, (H, W))                     # (H, W)
    side = int(rng.integers(int(0.45 * min(H, W)), int(0.8 * min(H, W))))
    g = np.asarray(Image.fromarray(v).resize((side, side), Image.Resampling.BICUBIC), np.float64)
    alpha_small = np.clip(g / 255 * 3, 0, 1)
    top, left = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
    alpha = np.zeros((H, W))
    alpha[top:top + side, left:left + side] = alpha_small
    tone = np.full((H, W), 255.0)
    tone[top:top + side, left:left + side] = 255 - g * rng.uniform(0.7, 1.0)   # dark where the data are bright
    dy, dx = rng.integers(4, 14, 2)
    shadow = np.asarray(Image.fromarray((np.roll(alpha, (dy, dx), (0, 1)) * 255).astype(np.uint8))
                        .filter(ImageFilter.GaussianBlur(6)), np.float64) / 255
    bg = bg * (1 - rng.uniform(0.15, 0.35) * shadow)                           # the drop shadow
    lum = (1 - alpha) * bg + alpha * tone
    tint = rng.uniform(0.9, 1.1, 3)                                             # a slight colour cast
    rgb = np.clip(lum[..., None] * tint + rng.normal(0, 2, (H, W, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--out", default="assets/photos")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    test = load_fashion_mnist("test")
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    labels = {}
    per_class = {k: np.flatnonzero(test.labels.numpy() == k) for k in range(10)}
    for i in range(args.n):
        k = i % 10
        j = int(per_class[k][5000 // 10 + i])         # test images from index ~500 on, one class at a time
        name = f"photo-{i:02d}-{test.class_names[k].split('/')[0].lower().replace(' ', '-')}.png"
        photo(test.images[j, 0].numpy(), rng).save(out / name)
        labels[name] = {"class": test.class_names[k], "index": k, "test_image": j}
    (out / "labels.json").write_text(json.dumps(labels, indent=1))


if __name__ == "__main__":
    main()
