"""Counterfactual view: drag one slider per class to set the target mixture; the image is noised to t*
and denoised with the shared classifier's guidance toward it (Deja et al.'s visual counterfactuals)."""
from __future__ import annotations

import gradio as gr
import numpy as np

from ..counterfactual import SCALE, T_STAR
from ..viz import trajectory_strip
from . import batches, compute, models, plots
from .pictures import big, channel_mean, signed

EXPLAIN = """**What you see.** *What would have to change for the model to call this a …?* The image is
noised to t\\* and walked back with the classifier's gradient pulling toward the classes you weight with
the sliders (several sliders: a mix, e.g. half shirt, half coat). **t\\*** sets how much may change: small
keeps the outline, large allows a new garment. **s** sets how hard the classifier pulls. The difference map
shows the edit: red pixels got brighter, blue darker. Release a slider to recompute."""

CF_STEPS = 25
CF_CONCURRENCY = 32           # handlers mostly wait for the compute thread; more in flight → bigger shared passes


def counterfactual(model_name: str, image, t_star: int = T_STAR, scale: float = SCALE, seed: int = 0, *weights,
                   progress=gr.Progress()):
    """→ ((before, after) pair, difference map, probability bars, trajectory strip, summary)."""
    model = compute.run(lambda: models.require_classifier(models.get(model_name)))
    x = models.image_input(model, image)          # here, not in the batch: a bad upload fails alone
    names = model.info.class_names
    w = np.asarray([float(v or 0) for v in weights][:len(names)] + [0.0] * (len(names) - len(weights)))
    if (w < 0).any() or w.sum() <= 0:
        raise gr.Error("Set at least one class slider above zero: the sliders are the target mixture.")
    if len(weights) > len(names) and any(float(v or 0) for v in weights[len(names):]):
        raise gr.Error(f"{model.info.name} has {len(names)} classes; got weights for {len(weights)}.")
    T = model.schedule.T
    t_star = int(min(max(int(t_star), 1), T))
    done = []

    def on_step(step):
        done.append(step.t)
        progress((len(done), CF_STEPS), desc=f"editing, t = {step.t}")
    cf = batches.counterfactual(model_name, x, w / w.sum(), t_star=t_star, scale=float(scale), steps=CF_STEPS,
                                seed=int(seed), record=True, callback=on_step)
    p0, p1 = cf.probs_before[0].cpu().numpy(), cf.probs_after[0].cpu().numpy()
    diff = channel_mean(cf.x_cf - cf.x) / 2          # in [0, 1] pixel units
    before, after = big(cf.x[0]), big(cf.x_cf[0])
    summary = (f"**{names[p0.argmax()]}** ({p0.max():.0%}) → **{names[p1.argmax()]}** ({p1.max():.0%}); "
               f"target weight on the new top class {w[p1.argmax()] / w.sum():.0%}. Mean pixel change "
               f"L1 {float(cf.l1[0]):.3f}, RMS {float(cf.l2[0]):.3f} (pixels in [0, 1]); t* = {t_star}, s = {scale:g}.")
    return ((before, after), signed(diff, vmax=max(float(np.abs(diff).max()), 1e-6)),
            plots.before_after(p0, p1, names, w / w.sum()), trajectory_strip(cf.steps, cf.x_cf, k=10, scale=3),
            summary)


def build(model_box: gr.Dropdown, image: gr.Image, class_names: list[str]) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        with gr.Column(scale=1, elem_id="cf-sliders"):
            gr.Markdown("**Target mixture** (weights are normalised to sum to 1)")
            sliders = [gr.Slider(0, 1, value=0.0, step=0.05, label=name,
                                 elem_id=f"cf-w{k}") for k, name in enumerate(class_names)]
        with gr.Column(scale=2):
            with gr.Row():
                t_star = gr.Slider(10, 500, value=T_STAR, step=10, label="how much may change: t*")
                scale = gr.Slider(0, 150, value=SCALE, step=5, label="guidance scale s")
                seed = gr.Number(0, precision=0, label="seed")
            summary = gr.Markdown("Drag a class slider to the right and release it.", elem_id="cf-summary")
            with gr.Row():
                compare = gr.ImageSlider(label="before | after (drag the divider)", type="pil", format="png",
                                         elem_classes="pixelated", elem_id="cf-compare")
                diff = gr.Image(label="difference (red brighter, blue darker)", format="png",
                                interactive=False, elem_classes="pixelated")
            bars = gr.Plot(label="p(y | x) before and after", show_label=False)
            strip = gr.Image(label="the edit's trajectory: x_t (top), x̂₀ (bottom), t* → 0", format="png",
                             interactive=False, elem_classes="pixelated")
            run = gr.Button("Make counterfactual", variant="primary", elem_id="cf-btn")
    inputs = [model_box, image, t_star, scale, seed] + sliders
    gr.on([run.click, t_star.release, scale.release] + [s.release for s in sliders],
          models.if_image(counterfactual, 5), inputs, [compare, diff, bars, strip, summary],
          api_name="counterfactual", concurrency_limit=CF_CONCURRENCY)
