"""Matplotlib figures for the views (object-oriented API only: pyplot's global state is not safe when
several requests draw at once).

Readable as shown: every figure is drawn about as wide (in pixels, at 100 dpi) as the page shows it at
1400 px, and no text is smaller than MIN_PT (12.5 px in the PNG, so ≥ 10 px even where the page shrinks a
figure to 80 %; tests/test_browser_figures.py checks both)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

MIN_PT = 9              # the smallest font size any figure uses (points at 100 dpi: 12.5 px)
WIDE, HALF, PANEL = 9.0, 4.6, 5.6      # figure widths (inches at 100 dpi) for a full-width, half-width and
                                       # two-thirds-width slot of the page at 1400 px

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]


def colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def _fig(w: float = 6.4, h: float = 3.2, bottom: float = 0.16, left: float = 0.1) -> Figure:
    # Fixed margins, no layout engine: "constrained" made every figure ~40 % slower to render, and
    # rendering is most of what a plot costs a request on a small CPU.
    fig = Figure(figsize=(w, h), dpi=100)
    fig.subplots_adjust(left=left, right=0.97, bottom=bottom, top=0.88, wspace=0.3)
    return fig


def smallest_text_px(fig: Figure) -> float:
    """The smallest visible text of the figure, in pixels of its PNG (what tests hold to a floor)."""
    from matplotlib.text import Text
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes) * fig.dpi / 72 if sizes else float("inf")


def _two_lines(title: str) -> str:
    """'Integrated Gradients — T-shirt/top' → two lines, so that a narrow panel never clips it."""
    return title.replace(" — ", "\n", 1)


def before_after(p0: np.ndarray, p1: np.ndarray, names: Sequence[str], target: np.ndarray | None = None) -> Figure:
    """Grouped bars: p(y | x) before and after the edit; the target mixture as outlined bars."""
    fig = _fig(PANEL, 3.2, bottom=0.3, left=0.12)
    ax = fig.add_subplot()
    i = np.arange(len(names))
    ax.bar(i - 0.2, p0, 0.4, color="#9aa5b1", label="before")
    ax.bar(i + 0.2, p1, 0.4, color=[colour(k) for k in i], label="after")
    if target is not None:
        ax.bar(i, target, 0.9, fill=False, edgecolor="k", ls=":", lw=1, label="target weights")
    ax.set_xticks(i, names, rotation=35, ha="right", fontsize=MIN_PT)
    ax.set(ylim=(0, 1.02), ylabel="p(y | x)")
    ax.legend(fontsize=MIN_PT)
    return fig


def heatmaps(maps: Sequence[np.ndarray], titles: Sequence[str], shared: bool = True, cmap: str = "RdBu_r",
             suptitle: str = "") -> Figure:
    """Signed maps side by side, one diverging colour scale for all (so that sizes compare) and a colour bar."""
    fig = _fig(min(3.0 * len(maps) + 0.8, WIDE), 3.3, bottom=0.04)
    axes = fig.subplots(1, len(maps))
    axes = np.atleast_1d(axes)
    vmax_all = max(float(np.abs(m).max()) for m in maps) or 1.0
    im = None
    for ax, m, title in zip(axes, maps, titles):
        vmax = vmax_all if shared else (float(np.abs(m).max()) or 1.0)
        im = ax.imshow(m, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(title.replace(" (", "\n(", 1) if len(title) > 24 else title, fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])
        if not shared:
            fig.colorbar(im, ax=ax, shrink=0.8)
    if shared:
        fig.colorbar(im, ax=list(axes), shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def overlays(image: np.ndarray, maps: Sequence[np.ndarray], titles: Sequence[str]) -> Figure:
    """The image in grey with each attribution map over it (red: raises the class score, blue: lowers it)."""
    # Two panels a row: a narrow page column still fits three-line titles (method, class, sanity check).
    rows = (len(maps) + 2) // 2
    fig = _fig(PANEL, 2.7 * rows, bottom=0.02, left=0.02)
    fig.subplots_adjust(right=0.95, top=1 - 0.65 / (2.7 * rows), hspace=0.6, wspace=0.25)
    axes = fig.subplots(rows, 2).ravel()
    for ax in axes[len(maps) + 1:]:
        ax.set_visible(False)
    axes[0].imshow(image, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    axes[0].set_title("input\n(model view)", fontsize=MIN_PT + 1)
    for ax, m, title in zip(axes[1:], maps, titles):
        vmax = float(np.abs(m).max()) or 1.0
        ax.imshow(image, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        im = ax.imshow(m, cmap="RdBu_r" if m.min() < 0 else "inferno", vmin=-vmax if m.min() < 0 else 0,
                       vmax=vmax, alpha=0.7, interpolation="nearest")
        ax.set_title(_two_lines(title), fontsize=MIN_PT + 1)
        fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=MIN_PT)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    return fig


def schedules(curves: dict[str, tuple[np.ndarray, np.ndarray]], t: int, T: int) -> Figure:
    """ᾱ_t (left) and log₁₀ SNR (right) for each schedule, the current t marked; one legend below both (inside
    either panel it covered the curves)."""
    fig = _fig(PANEL, 3.3, bottom=0.3, left=0.12)
    fig.subplots_adjust(wspace=0.45)
    a1, a2 = fig.subplots(1, 2)
    for (name, (ab, snr)), c in zip(curves.items(), PALETTE):
        ts = np.arange(len(ab))
        a1.plot(ts, ab, color=c, label=name, lw=2)
        a2.plot(ts[1:], np.log10(snr[1:]), color=c, label=name, lw=2)
        a1.plot([t], [ab[t]], "o", color=c)
        if t > 0:
            a2.plot([t], [np.log10(snr[t])], "o", color=c)
    for ax in (a1, a2):
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=MIN_PT)
    a1.set(ylabel="ᾱ_t  (signal kept)", xlim=(0, T))
    a2.set(ylabel="log₁₀ SNR = log₁₀ ᾱ/(1−ᾱ)", xlim=(0, T))
    a1.set_title("how much of x₀ is left", fontsize=11)
    a2.set_title("signal-to-noise ratio", fontsize=11)
    handles, labels = a1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=MIN_PT, frameon=False)
    return fig


def toy_scene(data: np.ndarray, labels: np.ndarray, names: Sequence[str], title: str,
              regions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
              arrows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
              particles: np.ndarray | None = None, path: np.ndarray | None = None,
              density: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Figure:
    """The 2-D playground: the data coloured by class, the classifier's regions, a log-density, a vector
    field, moving particles and a counterfactual path — whichever are given."""
    fig = _fig(HALF, 5.0, bottom=0.16, left=0.12)
    fig.subplots_adjust(top=0.87)
    ax = fig.add_subplot()
    if density is not None:
        gx, gy, log_p = density
        top = float(log_p.max())
        ax.contourf(gx, gy, np.clip(log_p, top - 8, top), levels=12, cmap="Greys", alpha=0.5)
    if regions is not None:
        gx, gy, lab = regions
        from matplotlib.colors import ListedColormap
        ax.contourf(gx, gy, lab, levels=np.arange(len(names) + 1) - 0.5,
                    cmap=ListedColormap([colour(k) for k in range(len(names))]), alpha=0.18)
    alpha = 0.15 if particles is not None else 0.5
    for k, name in enumerate(names):
        sel = labels == k
        ax.scatter(data[sel, 0], data[sel, 1], s=5, color=colour(k), alpha=alpha, label=name)
    if arrows is not None:
        ax.quiver(*arrows, color="#333333", angles="xy", scale_units="xy", scale=None, width=0.003, alpha=0.8)
    if particles is not None:
        ax.scatter(particles[:, 0], particles[:, 1], s=7, color="k", alpha=0.8, label="particles")
    if path is not None:
        ax.plot(path[:, 0], path[:, 1], "-", color="k", lw=2)
        ax.plot(*path[0], "o", color="k", ms=8, label="start")
        ax.plot(*path[-1], "*", color="#e15759", ms=16, mec="k", label="counterfactual")
    ax.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), aspect="equal")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=MIN_PT)
    # Below the axes: inside, it covered the reverse process's particles (spread over the whole box early on).
    n_items = len(ax.get_legend_handles_labels()[1])
    # At most three a row: four ("… start, counterfactual") ran past the figure's edge at 1280 px.
    legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncols=min(n_items, 3), fontsize=MIN_PT,
                       markerscale=2, frameon=False, handletextpad=0.3, columnspacing=1.0)
    from matplotlib.lines import Line2D
    for handle in legend.legend_handles:      # markerscale enlarges the 5-pt data dots; the path's start dot and
        if isinstance(handle, Line2D):        # 16-pt star it made huge, over the legend's own text
            handle.set_markersize(8)
    return fig


def level_posterior(probs: np.ndarray, t_true: int, T: int, expected: float) -> Figure:
    """p(t | x_t) over the levels 0 … T+1 with the true level marked."""
    fig = _fig(HALF, 3.2, bottom=0.19, left=0.15)
    ax = fig.add_subplot()
    ax.fill_between(np.arange(len(probs)), probs, color=colour(0), alpha=0.35, step="mid")
    ax.plot(np.arange(len(probs)), probs, color=colour(0), lw=1.5, drawstyle="steps-mid", label="p(t | x_t)")
    ax.axvline(t_true, color="k", ls="--", lw=1.2, label=f"true t = {t_true}")
    ax.axvline(expected, color=colour(2), ls=":", lw=1.5, label=f"mean guess {expected:.0f}")
    ax.set(xlim=(0, T + 1), ylim=(0, None), xlabel="noise level t (0 clean, T+1 noise)", ylabel="probability")
    ax.set_title("how noisy does x_t look?", fontsize=11)
    ax.tick_params(labelsize=MIN_PT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=MIN_PT)
    return fig


def bpd_histogram(hist: dict | None, value: float, others: dict[str, float] | None = None,
                  label: str = "your image") -> Figure:
    """The test set's bits/dim as a histogram, the given image as a red line, and reference means (OOD sets).
    The legend sits below the axes: inside, it covered the histogram's tail and the OOD lines."""
    fig = _fig(HALF, 3.7, bottom=0.34, left=0.15)
    fig.subplots_adjust(top=0.9)
    ax = fig.add_subplot()
    if hist:
        edges = np.asarray(hist["edges"])
        ax.stairs(hist["counts"], edges, fill=True, color="#9aa5b1", alpha=0.7, label="test images")
    # Distinct hue *and* dash per reference: teal and green dotted lines read as one in the legend.
    for (name, v), c, ls in zip((others or {}).items(), ("#4e79a7", "#f28e2b", "#b07aa1", "#59a14f"),
                                (":", "-.", "--", (0, (1, 3)))):
        ax.axvline(v, color=c, ls=ls, lw=2, label=f"{name} (mean)")
    ax.axvline(value, color="#e15759", lw=2.5, label=f"{label}: {value:.2f}")
    ax.set(xlabel="bits/dim (lower: more likely)", ylabel="images")
    ax.set_title("one-pass likelihood (Thm 3.2)", fontsize=11)
    ax.tick_params(labelsize=MIN_PT)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=MIN_PT,
               frameon=False, columnspacing=1.0, handlelength=1.6)
    return fig


def channel_grid(fmap: np.ndarray, title: str, max_channels: int = 32) -> Figure:
    """The first channels of one feature map (C, H, W), each on its own colour scale."""
    n = min(max_channels, fmap.shape[0])
    cols = 8
    rows = (n + cols - 1) // cols
    fig = _fig(HALF, 0.6 * rows + 0.6, bottom=0.02)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.9, wspace=0.08, hspace=0.08)
    axes = np.atleast_2d(fig.subplots(rows, cols))
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        if i < n:
            ax.imshow(fmap[i], cmap="magma", interpolation="nearest")
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=MIN_PT + 1)
    return fig


def pca_scatter(coords: np.ndarray, labels: np.ndarray, names: Sequence[str], mine: np.ndarray, title: str) -> Figure:
    """Test images in two principal components, coloured by class, and the given image as a star."""
    fig = _fig(HALF, 5.0, bottom=0.3, left=0.14)
    fig.subplots_adjust(top=0.9)
    ax = fig.add_subplot()
    for k, name in enumerate(names):
        sel = labels == k
        ax.scatter(coords[sel, 0], coords[sel, 1], s=5, color=colour(k), alpha=0.6, label=name)
    ax.plot(mine[0], mine[1], "*", color="#e15759", ms=18, mec="k", zorder=5)
    # The star always inside the frame, and the legend below the axes (it covered points, and spilled out).
    pts = np.vstack([coords[:, :2], np.asarray(mine)[None, :2]])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.06 * np.maximum(hi - lo, 1e-6)
    ax.set(xlim=(lo[0] - pad[0], hi[0] + pad[0]), ylim=(lo[1] - pad[1], hi[1] + pad[1]), xlabel="PC 1", ylabel="PC 2")
    ax.set_title(title, fontsize=MIN_PT + 1)
    ax.tick_params(labelsize=MIN_PT)
    from matplotlib.lines import Line2D
    handles, labels_ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], ls="", marker="*", color="#e15759", mec="k", ms=9)]
    fig.legend(handles, labels_ + ["your image"], loc="lower center", ncol=3, fontsize=MIN_PT, markerscale=1.6,
               frameon=False, handletextpad=0.2, columnspacing=0.8)
    return fig


def phase_panels(columns: Sequence[tuple[str, np.ndarray, np.ndarray]], s: float) -> Figure:
    """Particles of several diffusions side by side at time s: per column (name, forward y_s, reverse y_s),
    each y (n, K, 2). Rows: the data plane (x₁, x₂) and the phase plane (x₁, v₁) — position against its
    first auxiliary ("velocity") — of the forward process (top two rows) and the learned reverse process."""
    n_col = len(columns)
    fig = Figure(figsize=(min(2.4 * n_col + 0.9, WIDE), 10.0), dpi=100)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.05, top=0.91, wspace=0.35,
                        hspace=0.45)
    rows = [("forward", "data"), ("forward", "phase"), ("reverse", "data"), ("reverse", "phase")]
    # Forward and reverse differ by more than colour: dots vs crosses, and a title on every row.
    style = {"forward": dict(color="#4e79a7", marker="."), "reverse": dict(color="#e15759", marker="x")}
    for j, (name, fwd, rev) in enumerate(columns):
        for i, (direction, plane) in enumerate(rows):
            ax = fig.add_subplot(len(rows), n_col, i * n_col + j + 1)
            y = fwd if direction == "forward" else rev
            st = style[direction]
            if plane == "data":
                ax.scatter(y[:, 0, 0], y[:, 0, 1], s=6 if direction == "forward" else 5, alpha=0.5,
                           linewidths=0.6, **st)
                ax.set(xlim=(-3, 3), ylim=(-3, 3))
                ax.set_xlabel("x₁", fontsize=MIN_PT, labelpad=1)
                ax.set_ylabel("x₂", fontsize=MIN_PT, labelpad=0)
            elif y.shape[1] > 1:
                ax.scatter(y[:, 0, 0], y[:, 1, 0], s=6 if direction == "forward" else 5, alpha=0.5,
                           linewidths=0.6, **st)
                ax.set(xlim=(-3, 3), ylim=(-3, 3))
                ax.set_xlabel("x₁ (position)", fontsize=MIN_PT, labelpad=1)
                ax.set_ylabel("v₁ (velocity)", fontsize=MIN_PT, labelpad=0)
            else:
                ax.text(0.5, 0.5, "K = 1:\nno auxiliary", ha="center", va="center", transform=ax.transAxes,
                        color="#555555", fontsize=MIN_PT + 1)
                ax.set(xticks=[], yticks=[])
            ax.set_aspect("equal", adjustable="box")
            ax.tick_params(labelsize=MIN_PT, pad=1)
            head = f"{name}\n" if i == 0 else ""
            ax.set_title(head + ("→ forward (from data)" if direction == "forward" else "← reverse (from noise)"),
                         fontsize=MIN_PT + 1, color=st["color"], fontweight="bold" if i == 0 else "normal")
    fig.suptitle(f"s = {s:.2f}   (s = 0: data, s = 1: the stationary Gaussian)", fontsize=12)
    return fig


def matrices(mats: Sequence[tuple[str, np.ndarray]], title: str) -> Figure:
    """Small annotated heat maps of K×K matrices (Q, D, …) on one symmetric colour scale each."""
    fig = Figure(figsize=(max(2.6 * len(mats), 5.2), 3.0), dpi=100)
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.08, top=0.78, wspace=0.35)
    for j, (name, m) in enumerate(mats):
        ax = fig.add_subplot(1, len(mats), j + 1)
        v = max(float(np.abs(m).max()), 1e-6)
        ax.imshow(m, cmap="RdBu_r", vmin=-v, vmax=v)
        for (a, b), val in np.ndenumerate(m):        # white on the dark cells, black on the light ones
            ax.text(b, a, f"{val:.2f}", ha="center", va="center", fontsize=10,
                    color="white" if abs(val) > 0.55 * v else "black")
        labels = ["x"] + [f"v{k}" for k in range(1, m.shape[0])]
        ax.set_xticks(range(m.shape[0]), labels, fontsize=MIN_PT + 1)
        ax.set_yticks(range(m.shape[0]), labels, fontsize=MIN_PT + 1)
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=11)
    return fig
