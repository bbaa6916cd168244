"""Counterfactuals judged from outside: garments the project never saw (drawn here with PIL: a shirt, a shoe,
a bag, a trouser, and three photo-like pictures — drawn garments on lit, textured backgrounds), edited by
`python3 -m jdx counterfactual` toward 2–3 targets each, and judged by a classifier the project never saw
(bench/third_classifier.py, an MLP) beside the shipped second opinion.

    python bench/outside_counterfactuals.py [--out assets/results/counterfactuals/outside]

Writes OUT/inputs/*.png, OUT/edits/<target>/*.png (+ summary.jsonl from the CLI), OUT/outside.md (the table)
and OUT/outside.png (inputs and edits side by side).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# name → (drawing, targets); class names as the shipped model spells them
TARGETS = {"shirt": ["Dress", "Coat", "Bag"], "shoe": ["Ankle boot", "Sandal"], "bag": ["Pullover", "Trouser"],
           "trouser": ["Dress", "Bag"], "photo-tshirt": ["Shirt", "Dress"], "photo-boot": ["Sneaker", "Bag"],
           "photo-dress": ["Coat", "Trouser"]}


def _garment(kind: str, size: int = 112) -> Image.Image:
    """A light garment on black (the Fashion-MNIST look), drawn with polygons and a little shading."""
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    s = size / 112
    P = lambda pts: [(x * s, y * s) for x, y in pts]                       # noqa: E731
    if kind in ("shirt", "tshirt"):
        sleeve = 40 if kind == "shirt" else 22
        d.polygon(P([(36, 14), (48, 20), (64, 20), (76, 14), (100, 26), (100, 26 + sleeve), (86, 26 + sleeve),
                     (84, 100), (28, 100), (26, 26 + sleeve), (12, 26 + sleeve), (12, 26)]), fill=185)
        d.line(P([(56, 22), (56, 100)]), fill=120, width=max(1, int(2 * s)))            # the placket
        for y in range(32, 96, 14):
            d.ellipse(P([(58, y), (62, y + 4)]), fill=230)
    elif kind == "shoe":
        d.polygon(P([(8, 52), (40, 50), (62, 62), (100, 70), (106, 82), (104, 90), (8, 90)]), fill=200)
        d.rectangle(P([(8, 86), (106, 94)]), fill=245)                                   # the sole
        for x in range(30, 60, 8):
            d.line(P([(x, 54), (x + 6, 62)]), fill=90, width=max(1, int(2 * s)))        # laces
    elif kind == "bag":
        d.rectangle(P([(14, 40), (98, 98)]), fill=170)
        d.arc(P([(34, 10), (78, 62)]), 180, 360, fill=210, width=max(1, int(6 * s)))   # the handle
        d.rectangle(P([(14, 54), (98, 58)]), fill=120)
    elif kind == "trouser":
        d.polygon(P([(34, 8), (78, 8), (84, 104), (62, 104), (56, 40), (50, 104), (28, 104)]), fill=160)
        d.line(P([(34, 14), (78, 14)]), fill=220, width=max(1, int(3 * s)))              # the waistband
    elif kind == "boot":
        d.polygon(P([(30, 10), (62, 10), (64, 58), (100, 70), (104, 92), (26, 92)]), fill=150)
        d.rectangle(P([(24, 90), (104, 100)]), fill=60)
    elif kind == "dress":
        d.polygon(P([(42, 8), (70, 8), (74, 40), (92, 104), (20, 104), (38, 40)]), fill=175)
        d.line(P([(38, 40), (74, 40)]), fill=230, width=max(1, int(3 * s)))
    else:
        raise ValueError(kind)
    if kind in ("shoe", "boot"):
        im = ImageOps.mirror(im)                          # toes to the left, as Fashion-MNIST's shoes
    return im.filter(ImageFilter.GaussianBlur(0.8 * s))


def _photo(kind: str, rng: np.random.Generator) -> Image.Image:
    """The drawn garment, dark-on-light, on a lit, textured background with a soft shadow: an RGB 'photo'."""
    H, W = 220, 200
    yy, xx = np.mgrid[:H, :W] / max(H, W)
    bg = 215 + 25 * (xx * rng.normal() + yy * rng.normal()) + 5 * np.sin(xx * 90) + rng.normal(0, 4, (H, W))
    g = np.asarray(_garment(kind, 150), np.float64)
    alpha = np.clip(g / 120, 0, 1)
    y0, x0 = 40, 25
    img = bg.copy()
    shadow = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(6)),
                        np.float64) / 255
    img[y0 + 6:y0 + 156, x0 + 6:x0 + 156] *= 1 - 0.35 * shadow
    colour = 255 - g * 0.9                                                          # dark cloth on light
    region = img[y0:y0 + 150, x0:x0 + 150]
    img[y0:y0 + 150, x0:x0 + 150] = alpha * colour + (1 - alpha) * region
    tint = np.array([1.0, 0.93, 0.85]) if kind == "boot" else np.array([0.85, 0.9, 1.0])
    rgb = np.clip(img[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb)


def make_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    for name in TARGETS:
        img = _photo(name.split("-")[1], rng) if name.startswith("photo-") else _garment(name)
        paths[name] = folder / f"{name}.png"
        img.save(paths[name])
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="assets/results/counterfactuals/outside")
    p.add_argument("--ckpt", default="checkpoints/fmnist-joint")
    args = p.parse_args()
    import torch
    from third_classifier import load
    from jdx.data import FASHION_MNIST_CLASSES as NAMES, image_to_input
    out = Path(args.out)
    paths = make_inputs(out / "inputs")
    third = load()
    rows = []
    for target in sorted({t for ts in TARGETS.values() for t in ts}):
        images = [str(paths[n]) for n, ts in TARGETS.items() if target in ts]
        folder = out / "edits" / target.replace(" ", "-").replace("/", "-")
        cmd = [sys.executable, "-m", "jdx", "counterfactual", args.ckpt, *images, "--target", target, "--json",
               "--out", str(folder)]
        lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()
        for line in lines:
            r = json.loads(line)
            # The third classifier sees the input and the edit (the CLI's PNG, mapped back onto the picture)
            # through the same preparation as any user image.
            r["third_before"] = NAMES[int(third.predict(image_to_input(r["image"])).argmax())]
            r["third"] = NAMES[int(third.predict(image_to_input(r["out"])).argmax())]
            rows.append(r)
    head = ("| image | target | joint before → after | p(target) joint | separate classifier | third (MLP) before → "
            "after | L1 | warnings |\n|---|---|---|---|---|---|---|---|\n")
    table = head + "\n".join(
        f"| {Path(r['image']).stem} | {r['target']} | {r['before']} → {r['after']} | {r['p_target_after']:.0%} "
        f"| {r['separate']} {'✓' if r['separate'] == r['target'] else '✗'} "
        f"| {r['third_before']} → {r['third']} {'✓' if r['third'] == r['target'] else '✗'} | {r['l1']:.3f} "
        f"| {'; '.join(r['warnings']).replace('|', chr(92) + '|') or '–'} |" for r in sorted(rows, key=lambda r: (r['image'], r['target'])))
    n = len(rows)
    summary = (f"\n\n{n} edits: the joint model reaches the target in {sum(r['after'] == r['target'] for r in rows)}, "
               f"the shipped separate classifier agrees in {sum(r['separate'] == r['target'] for r in rows)}, "
               f"the third classifier (MLP, never seen by the project) in {sum(r['third'] == r['target'] for r in rows)} "
               f"(it called {len({r['image'] for r in rows if r['third_before'] == r['before']})} of the "
               f"{len({r['image'] for r in rows})} inputs what the joint model called them)."
               f"\nCommand: `python bench/outside_counterfactuals.py --out {args.out}` (method: the default).\n")
    (out / "outside.md").write_text(table + summary)
    print(table + summary)
    figure(rows, paths, out / "outside.png")


def figure(rows, paths, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(paths)
    k = max(len(TARGETS[n]) for n in names)
    fig, axes = plt.subplots(len(names), k + 1, figsize=(1.7 * (k + 1), 1.8 * len(names)), dpi=90)
    for i, n in enumerate(names):
        axes[i, 0].imshow(Image.open(paths[n]).convert("RGB"))
        axes[i, 0].set_title(n, fontsize=7)
        mine = sorted((r for r in rows if Path(r["image"]).stem == n), key=lambda r: r["target"])
        for j in range(k):
            ax = axes[i, j + 1]
            if j < len(mine):
                r = mine[j]
                ax.imshow(Image.open(r["out"]).convert("RGB"))
                ax.set_title(f"→ {r['target']}: joint {r['after']}\nsep. {r['separate']}, MLP {r['third']}", fontsize=6)
            else:
                ax.axis("off")
        for ax in axes[i]:
            ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
