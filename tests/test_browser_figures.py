"""Every figure of the app is readable as the page shows it: no text under plots.MIN_PT (12.5 px in the PNG;
tests/test_browser.py checks that the page never shrinks a figure below 80 % at 1400 px, so ≥ 10 px on
screen), and no figure drawn wider than the widest slot of the page (900 px at 1400 px). No browser needed."""
from __future__ import annotations

import numpy as np
import pytest

from jdx.ui import plots

rng = np.random.default_rng(0)
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
P = rng.dirichlet(np.ones(10), size=21)
MAP = rng.standard_normal((28, 28))


def figures():
    grid = np.linspace(-1, 1, 5)
    gx, gy = np.meshgrid(grid, grid)
    y = rng.standard_normal((50, 2, 2))
    yield "before_after", plots.before_after(P[0], P[1], NAMES, np.eye(10)[8])
    yield "heatmaps", plots.heatmaps([MAP] * 3, ["ε̂ (predicted noise)", "− s·√(1−ᾱ)·∇log p(Bag | x_t)",
                                                  "guided ε̂′"], suptitle="noise space at t = 100")
    yield "heatmaps (own scales)", plots.heatmaps([MAP] * 3, ["∇ₓF(x_t, t)", "CDM x̂₀ − x₀ (MSE 0.0533)",
                                                               "fmnist-joint x̂₀ − x₀ (MSE 0.0402)"], shared=False)
    yield "overlays", plots.overlays(MAP, [MAP, np.abs(MAP)], ["Integrated Gradients — T-shirt/top",
                                                               "SmoothGrad — T-shirt/top"])
    ab = np.linspace(1, 0.01, 501)
    yield "schedules", plots.schedules({"linear (this model)": (ab, ab / (1 - ab + 1e-9)), "cosine": (ab, ab / (1 - ab + 1e-9))},
                                       100, 500)
    yield "toy_scene", plots.toy_scene(rng.standard_normal((100, 2)), rng.integers(0, 2, 100), ["upper moon", "lower moon"],
                                       "counterfactual: upper moon → lower moon\n(target: lower moon)",
                                       arrows=(gx, gy, gx * 0.1, gy * 0.1), path=rng.standard_normal((5, 2)) * 0.3)
    yield "level_posterior", plots.level_posterior(rng.dirichlet(np.ones(502)), 200, 500, 202.0)
    yield "bpd_histogram", plots.bpd_histogram({"edges": list(np.linspace(3, 9, 31)), "counts": list(range(30))}, 3.9,
                                               {"uniform noise": 8.6, "inverted": 7.2, "random shapes": 7.1})
    yield "channel_grid", plots.channel_grid(rng.standard_normal((32, 7, 7)), "mid at t = 50: 128 channels, first 32")
    yield "pca_scatter", plots.pca_scatter(rng.standard_normal((300, 2)), rng.integers(0, 10, 300), NAMES,
                                           np.array([5.0, -4.0]), "mid at t = 50: 2,000 test images")
    yield "phase_panels", plots.phase_panels([(f"d{k} (K=2)", y, y) for k in range(4)], 0.04)
    yield "matrices", plots.matrices([("learned Q", rng.standard_normal((2, 2))), ("learned D", np.eye(2))], "Q and D")


@pytest.mark.parametrize("name, fig", list(figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_figure_text_is_readable(name, fig):
    assert plots.smallest_text_px(fig) >= plots.MIN_PT * 100 / 72 - 1e-6, name
    assert fig.get_figwidth() * fig.dpi <= 900, f"{name} is drawn wider than the page shows it"


def test_matrix_numbers_are_white_on_dark_cells():
    fig = plots.matrices([("Q", np.array([[0.0, -2.0], [2.0, 0.1]]))], "Q")
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert colours["-2.00"] == "white" and colours["2.00"] == "white" and colours["0.10"] == "black"


def test_probe_heat_map_is_readable():
    from jdx.probes import Sweep, heat_map
    sweep = Sweep([f"enc{k} L0 down" for k in range(19)], [0, 10, 25, 50, 100, 150, 250], rng.uniform(0.6, 0.9, (19, 7)),
                  0.807)
    fig = heat_map(sweep, "fmnist-joint: best mid at t = 0 (93.1%)")
    assert plots.smallest_text_px(fig) >= plots.MIN_PT * 100 / 72 - 1e-6
    assert fig.get_figwidth() * fig.dpi <= 460                 # two side by side in a 900 px row
