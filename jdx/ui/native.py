"""Tables for Gradio's native plots (gr.LinePlot, gr.BarPlot): drawn by the browser, so a request sends a
few hundred numbers instead of a rendered PNG, and a person can hover a point to read its value."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

OTHERS = "all others"       # their probabilities summed; short: a longer name was clipped in Denoise's legend


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
    class k in the palette the matplotlib figures use, the summed rest dark grey (Ankle boot has the light
    grey), the marked frame black."""
    from .plots import colour
    return {**{n: colour(k) for k, n in enumerate(names)}, OTHERS: "#4d4d4d", MARK: "#000000"}


def padded(table: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The class table after one empty (NaN, not drawn) row per possible series, always in the same order.
    Gradio takes the colour scale's domain from the series in the data, in order of appearance, and a page
    that got a new table kept mapping colours on the old domain (a Trouser line drawn in Sneaker's pink, no
    legend swatch for it); with these rows first the domain is the same for every picture and every frame."""
    series = table.columns[-1]
    every = list(colours(names))
    head = pd.DataFrame({table.columns[0]: [table.iloc[0, 0]] * len(every), table.columns[1]: np.nan, series: every})
    return pd.concat([head, table], ignore_index=True)


def legend(plot) -> dict:
    """gr.update(color_map, colors_in_legend) for a class plot already on the page (its PlotData: the padded
    rows first, then the drawn ones). It must come in an update of its own, after the table: Gradio 6.31
    rebuilds the chart when these change, and in an update that also carried a new table it rebuilt it with
    the *previous* table's rows (the new legend over the old picture's curves)."""
    import gradio as gr
    rows = plot.get("data") if isinstance(plot, dict) else getattr(plot, "data", None)   # as the page sends it
    if not rows:
        return gr.skip()
    every = [r[-1] for r in rows if r[1] is None]              # padded(): every series, colours() order
    names = [c for c in every if c not in (OTHERS, MARK)]
    shown = [c for c in dict.fromkeys(r[-1] for r in rows if r[1] is not None) if c != MARK]
    return gr.update(color_map=colours(names), colors_in_legend=shown)
