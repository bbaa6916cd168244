"""Pictures with a scale, drawn with PIL instead of matplotlib: a few milliseconds instead of ~0.2 s of figure
building and encoding per request, which is what 30 concurrent requests spent most of their time on.

Text is DejaVu Sans (matplotlib's own font) at FONT_PX ≥ 13 px, so ≥ 10 px even where the page shrinks the
picture to 80 %."""
from __future__ import annotations


import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..viz import dejavu
from .pictures import DISPLAY, signed

FONT_PX = 14


def font(px: int = FONT_PX) -> ImageFont.FreeTypeFont:
    return dejavu(px)            # cached there


def _colour_bar(vmax: float, height: int, width: int = 16) -> Image.Image:
    """A vertical RdBu_r bar from +vmax (top) to −vmax (bottom)."""
    ramp = np.linspace(vmax, -vmax, height)[:, None].repeat(width, 1)
    return signed(ramp, vmax, side=1)


def signed_with_scale(m: np.ndarray, title: str, vmax: float | None = None, side: int = DISPLAY) -> Image.Image:
    """A signed (H, W) map on a diverging scale symmetric about 0 (blue −, white 0, red +), a title above it and
    a colour bar with its three values (+vmax, 0, −vmax) to the right."""
    a = np.asarray(m, dtype=np.float64)
    vmax = max(float(np.abs(a).max()) if vmax is None else float(vmax), 1e-3)
    img = signed(a, vmax, side)
    f = font()
    labels = [f"+{vmax:.2g}", "0", f"−{vmax:.2g}"]
    label_w = max(int(f.getlength(s)) for s in labels) + 6
    top, bar_w, gap = FONT_PX + 10, 16, 8
    out = Image.new("RGB", (img.width + gap + bar_w + label_w + 4, img.height + top + 6), "white")
    out.paste(img, (0, top))
    out.paste(_colour_bar(vmax, img.height, bar_w), (img.width + gap, top))
    draw = ImageDraw.Draw(out)
    draw.text((2, 2), title, fill="black", font=f)
    x = img.width + gap + bar_w + 4
    for s, y in zip(labels, (top, top + img.height // 2, top + img.height)):
        draw.text((x, y), s, fill="black", font=f, anchor="lm")
    return out


GREY, BLUE, ORANGE = (154, 165, 177), (78, 121, 167), (242, 142, 43)


def probability_bars(p0: np.ndarray, p1: np.ndarray, names, target: np.ndarray | None = None,
                     p_second: np.ndarray | None = None, width: int = 560) -> Image.Image:
    """Counterfactual tab: per class (one row each, names on the left) p(y | x) before (grey) and after (blue)
    the edit, the separate classifier's p(y | x_cf) (an orange tick) and the target weight (a dotted box);
    a legend above, a 0 … 1 axis below."""
    f = font()
    row, pad = 26, 6
    name_w = max(int(f.getlength(n)) for n in names) + 10
    legend_h, axis_h = 2 * (FONT_PX + 8), FONT_PX + 12
    x0, x1 = name_w, width - 24                                  # the 0 and 1 of the probability axis
    height = legend_h + row * len(names) + axis_h
    out = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(out)
    px = lambda p: x0 + float(p) * (x1 - x0)                     # noqa: E731
    # legend: two lines, each key a small swatch and its words
    keys = [(GREY, "before (joint)"), (BLUE, "after (joint)")]
    if p_second is not None:
        keys.append((ORANGE, "after (separate classifier)"))
    if target is not None:
        keys.append((None, "target weights"))
    x, y = 4, 3
    for colour, text in keys:
        w = 22 + int(f.getlength(text)) + 16
        if x + w > width:
            x, y = 4, y + FONT_PX + 8
        if colour is None:
            _dotted_box(d, (x, y + 3, x + 16, y + FONT_PX + 1))
        elif colour == ORANGE:       # drawn as the tick it is in the rows (a filled square read as a bar)
            d.line((x + 8, y + 1, x + 8, y + FONT_PX + 3), fill=colour, width=4)
        else:
            d.rectangle((x, y + 3, x + 16, y + FONT_PX + 1), fill=colour)
        d.text((x + 22, y), text, fill="black", font=f)
        x += w
    for k, name in enumerate(names):
        top = legend_h + k * row
        mid = top + row // 2
        d.text((name_w - 6, mid), name, fill="black", font=f, anchor="rm")
        d.rectangle((x0, top + 3, px(p0[k]), mid - 1), fill=GREY)
        d.rectangle((x0, mid + 1, px(p1[k]), top + row - 3), fill=BLUE)
        if target is not None and target[k] > 0:
            _dotted_box(d, (x0, top + 1, px(target[k]), top + row - 1))
        if p_second is not None and p_second[k] >= 0.01:
            # across both bars of the row, so a tick at 100 % still shows beyond the blue bar's end (none under
            # 1 %: ticks on the axis joined into one orange line)
            d.line((px(p_second[k]), top, px(p_second[k]), top + row), fill=ORANGE, width=4)
    # the probability axis
    base = legend_h + row * len(names)
    d.line((x0, legend_h, x0, base), fill="black")
    d.line((x0, base, x1, base), fill="black")
    for p in (0, 0.25, 0.5, 0.75, 1):
        d.line((px(p), base, px(p), base + 4), fill="black")
        d.text((px(p), base + 5), f"{p:g}", fill="black", font=f, anchor="mt")
    d.text((x0 - 8, base + 5), "p(y | x)", fill="black", font=f, anchor="rt")
    return out


def _dotted_box(d: ImageDraw.ImageDraw, box: tuple[float, float, float, float], step: int = 4) -> None:
    x_a, y_a, x_b, y_b = (int(round(v)) for v in box)
    for x in range(x_a, x_b + 1, step):
        d.point([(x, y_a), (x, y_b)], fill="black")
    for y in range(y_a, y_b + 1, step):
        d.point([(x_a, y), (x_b, y)], fill="black")


def variable_mosaic(frames, title: str, width: int = 880) -> Image.Image:
    """An image's variables along a trajectory as one picture: columns are times s (labelled above), rows the
    K variables (x, v1, …; named on the left); each frame (K, H, W). Row x in grey, the auxiliaries on a signed
    scale (blue −, red +); one scale per row, symmetric about 0, so that the columns compare."""
    from matplotlib import colormaps
    f = font()
    K, H, W = frames[0][1].shape
    left, head, gap = 34, 2 * FONT_PX + 16, 4
    zoom = max(1, (width - left - gap * len(frames)) // (len(frames) * W))
    tile = W * zoom
    out = Image.new("RGB", (left + len(frames) * (tile + gap), head + K * (H * zoom + gap)), "white")
    d = ImageDraw.Draw(out)
    d.text((2, 2), title, fill="black", font=f)
    for k in range(K):
        v = max(float(max(np.abs(fr[k]).max() for _, fr in frames)), 1e-6)
        y = head + k * (H * zoom + gap)
        d.text((left - 6, y + H * zoom // 2), "x" if k == 0 else f"v{k}", fill="black", font=f, anchor="rm")
        for j, (s, fr) in enumerate(frames):
            a = np.clip(fr[k] / v, -1, 1) * 0.5 + 0.5
            rgb = (colormaps["gray" if k == 0 else "RdBu_r"](a)[..., :3] * 255).astype(np.uint8)
            x = left + j * (tile + gap)
            out.paste(Image.fromarray(rgb).resize((tile, H * zoom), Image.Resampling.NEAREST), (x, y))
            if k == 0:
                d.text((x + tile // 2, head - 4), f"s={s:.3g}", fill="black", font=f, anchor="mb")
    return out
