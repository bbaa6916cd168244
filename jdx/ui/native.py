"""Tables for Gradio's native plots (gr.LinePlot, gr.BarPlot): drawn by the browser, so a request sends a
few hundred numbers instead of a rendered PNG, and a person can hover a point to read its value."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

OTHERS = "other classes (sum)"


def class_curves(ts: Sequence[int], probs: np.ndarray, names: Sequence[str], x: str = "noise level t",
                 top: int = 4) -> pd.DataFrame:
    """p(y | ·) along ts (len(ts), K) → long table (x, probability, class): the `top` classes that ever matter
    most as their own lines, the rest summed into one (ten lines and a ten-row legend told a person nothing)."""
    probs = np.asarray(probs, dtype=np.float64)
    strong = [int(k) for k in np.argsort(-probs.max(0))[:top]]
    series = {names[k]: probs[:, k] for k in strong}
    rest = [k for k in range(len(names)) if k not in strong]
    if rest:
        series[OTHERS] = probs[:, rest].sum(1)
    return pd.concat([pd.DataFrame({x: list(ts), "probability": p.round(4), "class": name})
                      for name, p in series.items()], ignore_index=True)


def probe_curves(curves: dict[str, tuple[Sequence[int], Sequence[float]]], pixels: float | None = None) -> pd.DataFrame:
    """Linear-probe test accuracy over t, one line per model ({name: (ts, accuracy)}), and the probe on raw
    pixels as a flat reference line."""
    rows = [pd.DataFrame({"noise level t": list(ts), "test accuracy": np.round(acc, 4), "features": name})
            for name, (ts, acc) in curves.items()]
    if pixels is not None and curves:
        ts = next(iter(curves.values()))[0]
        rows.append(pd.DataFrame({"noise level t": [min(ts), max(ts)], "test accuracy": [round(pixels, 4)] * 2,
                                  "features": "raw pixels (t = 0)"}))
    return pd.concat(rows, ignore_index=True)


MARK = "frame on screen"


def with_mark(table: pd.DataFrame, x: str, at: float, y: str = "probability", span=(0.0, 1.0)) -> pd.DataFrame:
    """The table plus a vertical rule at x = `at` (two points of their own series, MARK): the native plots
    draw no reference lines, and the scrubbed frame has to be findable on the curves."""
    rule = pd.DataFrame({x: [at, at], y: list(span), table.columns[-1]: MARK})
    return pd.concat([table, rule], ignore_index=True)


def colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per series the class tables can hold (Vega leaves a series missing from color_map uncoloured):
    class k in the palette the matplotlib figures use, the summed rest grey, the marked frame black."""
    from .plots import colour
    return {**{n: colour(k) for k, n in enumerate(names)}, OTHERS: "#b0b0b0", MARK: "#000000"}
