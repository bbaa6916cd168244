"""Photos in, Fashion-MNIST-like view out. Fashion-MNIST shows each product bright on a black background,
cropped to the object and scaled so that its longer side fills the 28 pixels (its creators trimmed,
resized and inverted product photos). An upload that does not look like that goes through the same steps:

    1. background from the border: a plane fitted to the border pixels (light, shaded or graded)
    2. invert if the background is light (dark-on-light products become bright-on-dark)
    3. suppress background and shadow: outside the object (|pixel − background plane| above a threshold set
       by the border's texture, a floor and a fraction of the object's contrast — shadows are fainter than
       the object casting them) everything becomes black
    4. crop to the object (the connected regions that survive, small specks dropped)
    5. pad to a square, centred (Fashion-MNIST's margin: none along the longer side)
    6. resize to the model's resolution

Every stage is returned as a small picture and a sentence, so the app and the CLI can say what was done."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

STAGE_SIDE = 96       # stages are shown small


class PhotoSteps(NamedTuple):
    image: Image.Image                   # the prepared square, not yet resized (mode L or RGB)
    inverted: bool
    crop: tuple[int, int, int, int] | None   # (left, top, right, bottom) of the object in the original
    box: tuple[int, int, int, int]       # where the crop sits in the square (left, top, right, bottom)
    steps: list[str]                     # what was done, in words
    stages: list[tuple[str, Image.Image]]  # (caption, small picture) per stage


def _small(a: np.ndarray) -> Image.Image:
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    img.thumbnail((STAGE_SIDE, STAGE_SIDE))
    return img


def border_plane(lum: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """Least-squares plane a + b·x + c·y through the background pixels of the border (width px) of a luminance
    image, and the border's robust spread around it (1.4826 × median absolute deviation). An object that touches
    the border is left out: the fit starts from the pixels within ±64 of the border's median and is refitted
    twice on those within 3 spreads (at least 8 levels) of the plane — a garment drawn up to the top edge had
    tilted the plane and inflated the spread until the whole garment counted as background."""
    h, w = lum.shape
    yy, xx = np.mgrid[:h, :w]
    edge = np.zeros((h, w), bool)
    edge[:width], edge[-width:], edge[:, :width], edge[:, -width:] = True, True, True, True
    A = np.stack([np.ones(edge.sum()), xx[edge] / w, yy[edge] / h], 1)
    b = lum[edge]
    inliers = np.abs(b - np.median(b)) <= 64
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(A[inliers], b[inliers], rcond=None)
        r = np.abs(b - A @ coef)
        spread = 1.4826 * float(np.median(r[inliers]))
        inliers = r <= max(3 * spread, 8.0)
    plane = coef[0] + coef[1] * xx / w + coef[2] * yy / h
    return plane, spread


def _keep_object(mask: np.ndarray) -> np.ndarray:
    """Drop specks: keep connected regions at least 2 % of the largest one's area."""
    from scipy import ndimage
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    areas = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    keep = np.flatnonzero(areas >= 0.02 * areas.max()) + 1
    return np.isin(labels, keep)


def fashion_mnist_view(img: Image.Image, shadow_floor: float = 0.10, shadow_fraction: float = 0.3) -> PhotoSteps:
    """An 8-bit L or RGB picture → the Fashion-MNIST-like square (before the final resize), with stages.
    The object is what differs from the background by more than 4 × the border's texture, shadow_floor × 255
    and shadow_fraction × the object's own contrast (a shadow is much fainter than the object casting it);
    holes inside it are kept, everything outside becomes black."""
    a = np.asarray(img, np.float64)
    rgb = a.ndim == 3
    lum = a.mean(2) if rgb else a
    h, w = lum.shape
    stages = [("upload", _small(a))]
    width = max(1, min(h, w) // 32)
    plane, spread = border_plane(lum, width)
    inverted = bool(np.median(plane) > 127)
    steps = [f"background from the border: level {np.median(plane):.0f}/255, texture ± {spread:.0f}"]
    if inverted:
        a, lum, plane = 255 - a, 255 - lum, 255 - plane
        steps.append("inverted (light background → dark, as in Fashion-MNIST)")
        stages.append(("inverted", _small(a)))
    diff = np.abs(lum - plane)                                   # (h, w) distance from the background
    top = float(np.percentile(diff, 99.5))                       # the object's contrast
    threshold = max(4 * spread, shadow_floor * 255, shadow_fraction * top)
    mask = _keep_object(diff > threshold)
    if mask.sum() < 0.002 * h * w:                               # nothing stands out: keep the picture as is
        steps.append("no object stands out from the background: not cropped")
        side = max(h, w)
        box = ((side - w) // 2, (side - h) // 2, (side - w) // 2 + w, (side - h) // 2 + h)
        return PhotoSteps(_square(a, side, box, float(np.median(plane))), inverted, None, box, steps, stages)
    from scipy import ndimage
    mask = ndimage.binary_fill_holes(mask)                       # dim parts inside the object stay
    ramp = np.where(mask, np.clip(diff * 255.0 / max(float(np.percentile(diff[mask], 99)), 1.0), 0, 255), 0)
    if rgb:   # keep colour: scale each pixel's distance-from-background by the object's intensity
        colour = np.abs(a - plane[..., None])
        fg = colour * (ramp / np.maximum(diff, 1e-6))[..., None]
        fg = np.clip(fg, 0, 255)
    else:
        fg = ramp
    steps.append(f"background and shadow suppressed (differences under {threshold:.0f}/255 → black)")
    stages.append(("no background", _small(fg)))      # short: a caption fits a 104-px thumbnail
    ys, xs = np.nonzero(mask)
    crop = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    fg = fg[crop[1]:crop[3], crop[0]:crop[2]]
    ch, cw = fg.shape[:2]
    steps.append(f"cropped to the object: {cw}×{ch} of {w}×{h} pixels")
    stages.append(("cropped", _small(fg)))
    side = max(ch, cw)
    box = ((side - cw) // 2, (side - ch) // 2, (side - cw) // 2 + cw, (side - ch) // 2 + ch)
    square = _square(fg, side, box, 0.0)
    steps.append(f"padded to a {side}×{side} square, centred (the longer side fills the frame, as in Fashion-MNIST)"
                 if ch != cw else f"already square ({side}×{side}): no padding")
    stages.append(("square", _small(np.asarray(square))))
    return PhotoSteps(square, inverted, crop, box, steps, stages)


def _square(a: np.ndarray, side: int, box: tuple[int, int, int, int], fill: float) -> Image.Image:
    out = np.full((side, side) + a.shape[2:], fill)
    out[box[1]:box[3], box[0]:box[2]] = a
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
