"""Gradients view: the fields that steer one reverse step at noise level t — the predicted noise ε̂, the
score it implies, and the classifier's guidance gradient — on shared colour scales so sizes compare."""
from __future__ import annotations

import gradio as gr
import numpy as np

from ..explain import gradient_views
from ..guidance import guided_fields
from ..protocols import Classifier, supports
from .compute import on_compute_thread
from .errors import clear_on_failure, clear_when, follow
from . import models, plots
from .pictures import big, channel_mean

EXPLAIN = """**What you see.** Your image noised to level t, x_t, and three arrows in image space (red: make
the pixel brighter, blue: darker). **ε̂** is the noise the network believes is in x_t; removing it gives
x̂₀. The **score** ∇ log p_t(x_t) = −ε̂ / √(1−ᾱ_t) points to where noisy images are more likely — the
direction every sampling step moves in. The **guidance gradient** ∇ log p(y | x_t) points to where the
classifier is more sure of class y; guidance adds **s ×** it to the score (equivalently subtracts
s √(1−ᾱ_t) × it from ε̂). Maps in one figure share one colour scale, so you can compare their sizes:
at large t guidance is a sizeable share of the step, at small t the score dominates."""


RUNNER_UP = "runner-up class"
PREDICTED = "predicted class"


@on_compute_thread
def gradients(model_name: str, image, t: int = 100, target: str = RUNNER_UP, scale: float = 8.0,
              seed: int = 0):
    """→ (x_t, x̂₀, ε-space figure, score-space figure, summary)."""
    model = models.get(model_name)
    x = models.image_input(model, image)
    T = model.schedule.T
    t = int(min(max(int(t), 0), T))
    names = model.info.class_names
    k = None
    if supports(model, Classifier):
        # The predicted class is often already certain (log p ≈ 0, gradient ≈ 0); the runner-up shows
        # where the image would have to change to become the model's second guess.
        ranked = model.predict(x)[0].argsort(descending=True).tolist()
        if target in (None, "", PREDICTED, RUNNER_UP):
            k = ranked[1 if target == RUNNER_UP else 0]
        else:
            k = models.class_index(model, target)
    v = gradient_views(model, x, t, k, seed=int(seed))
    sigma = float(model.schedule.sigma(max(t, 1)))
    eps, score, grad = (channel_mean(a) for a in (v.eps_hat, v.score, v.guidance))
    g = guided_fields(eps, score, grad, scale, sigma)
    cls = names[k] if k is not None else "— (no classifier)"
    y = names[k] if k is not None else "y"      # the titles name the class, or stay the formula (no classifier)
    eps_fig = plots.heatmaps([eps, g.eps_shift, g.eps_guided],
                             ["ε̂ (predicted noise)", f"− s·√(1−ᾱ)·∇log p({y} | x_t)", "guided ε̂′"],
                             suptitle=f"noise space at t = {t}, s = {scale:g} (one colour scale)")
    score_fig = plots.heatmaps([score, g.score_shift, g.score_guided],
                               ["score −ε̂/√(1−ᾱ)", f"s·∇log p({y} | x_t)", "guided score"],
                               suptitle=f"score space at t = {t} (one colour scale)")
    norm = lambda a: float(np.sqrt((a ** 2).sum()))   # noqa: E731 — a one-line helper for the summary
    summary = (f"t = {t}, √(1−ᾱ_t) = {sigma:.3f}, class = {cls}. Norms: ‖ε̂‖ = {norm(eps):.2f}, "
               f"‖score‖ = {norm(score):.1f}, ‖s·∇log p‖ = {norm(g.score_shift):.2f} "
               f"(guidance is {norm(g.score_shift) / max(norm(score), 1e-12):.1%} of the score).")
    return big(v.x_t), big(v.x0_hat), eps_fig, score_fig, summary


def build(model_box: gr.Dropdown, image: gr.Image, class_names: list[str]) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        t = gr.Slider(0, models.T_of(model_box.value), value=100, step=1, label="noise level t")
        target = gr.Dropdown([RUNNER_UP, PREDICTED] + class_names, value=RUNNER_UP, label="class y")
        scale = gr.Slider(0, 30, value=8, step=0.5, label="guidance scale s")
        seed = gr.Number(0, precision=0, label="noise seed")
    with gr.Row():
        x_t = gr.Image(label="x_t", format="png", interactive=False, elem_classes="pixelated", height=200,
                       elem_id="gradients-xt")
        x0 = gr.Image(label="x̂₀", format="png", interactive=False, elem_classes="pixelated", height=200)
        summary = gr.Markdown(elem_id="gradients-summary")
    eps_fig = gr.Plot(label="noise space", show_label=False)
    score_fig = gr.Plot(label="score space", show_label=False)
    run = gr.Button("Show gradients", variant="primary", elem_id="gradients-btn")
    models.follow_T(model_box, t)
    outputs = [x_t, x0, eps_fig, score_fig, summary]
    clear_when([image.change, model_box.change], outputs, "**Show gradients**")
    clear_on_failure(follow([run.click, t.release, target.change, scale.release], models.if_image(gradients, 5),
                            [model_box, image, t, target, scale, seed], outputs, api_name="gradients"), outputs)
