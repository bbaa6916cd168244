"""Noise-level classifier view (CDM): a network that only answers "how noisy is this?" — and whose input
gradient is a denoiser (Thm 3.1) and whose two extreme outputs give the exact likelihood (Thm 3.2)."""
from __future__ import annotations

import gradio as gr

from ..protocols import NoiseLevelClassifier, supports
import numpy as np
import torch

from ..cdm import dequantize
from .compute import on_compute_thread
from ..ood import calibration_for_cdm, png_bits_per_dim
from . import models, plots
from .errors import clear_on_failure, clear_when, follow
from .pictures import big, channel_mean

CDM_KINDS = ("cdm",)
EXPLAIN = """**A classifier of noise levels.** This network (a CDM) never sees t: given an image it says
*how noisy it looks*, as a distribution p(t | x) over the levels 0 (clean) … T+1 (pure noise). Noise your
image to t and see whether it guesses right. Two facts turn this classifier into a full diffusion model:
**its gradient is a denoiser** — with F(x, t) = log p(T+1 | x) − log p(t | x), the predicted noise is
ε̂ = √(1−ᾱ_t) · (∇ₓF + x) — shown beside the diffusion model's own x̂₀; and **one pass gives the exact
likelihood** log p(x) = f₀(x) − f_{T+1}(x) − ½‖x‖² − (d/2) log 2π of your (clean) image, in bits per pixel.

**Likelihood is not "looks like clothes".** Lower bits/dim means the model compresses the image well —
and *simple* pictures (a few flat shapes, a constant image, a drawing) compress well under any model, so
they get **lower** bits/dim than real clothes: raw likelihood ranks random shapes as *more* typical than the
test images (for the shipped CDM: random shapes average 3.73 bits/dim, test images 4.44). The fix (Serrà et al., ICLR 2020) subtracts how well a
general-purpose compressor does: **corrected = bits/dim − PNG's bits/dim**. A clothing image is one this
model compresses much better than PNG does (a low corrected score); a simple shape is compressed well by
both, so its corrected score is high. The summary gives both numbers for your image."""


def _pick_cdm(name: str):
    model = models.get(name)
    if not supports(model, NoiseLevelClassifier):
        raise gr.Error(f"{name} is a {model.info.kind} model; pick a noise-level classifier (cdm) checkpoint")
    return model


@on_compute_thread
def noise_level(model_name: str, image, cdm_name: str = "fmnist-cdm", t: int = 200, seed: int = 0):
    """→ (x_t, CDM x̂₀, diffusion-model x̂₀, p(t | x_t) figure, ∇ₓF and error maps figure, bits/dim
    figure, summary)."""
    cdm = _pick_cdm(cdm_name)
    x0 = models.image_input(cdm, image)
    x_t, x0_cdm, ddm_img, level_fig, grad_fig, said = levels(cdm, x0, model_name, t, seed)
    bpd_fig, likely = likelihood(cdm, x0, seed)
    return x_t, x0_cdm, ddm_img, level_fig, grad_fig, bpd_fig, said + " " + likely


def levels(cdm, x0: torch.Tensor, model_name: str, t: int, seed: int = 0):
    """The noise-level half of the view for the clean image x0 (1, C, H, W): → (x_t, CDM x̂₀, the picked
    model's x̂₀ or None, p(t | x_t) figure, ∇ₓF and error maps figure, the sentence on t and the errors)."""
    T = cdm.schedule.T
    t = int(min(max(int(t), 1), T))
    g = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(x0.shape, generator=g).to(x0.device)
    x_t = cdm.schedule.noise_to(x0, t, eps)

    eps_cdm, grad_F, logits = cdm.eps_and_grad(x_t, t)                      # one forward + one backward
    probs = logits[0].softmax(-1).cpu().numpy()                                # p(t | x_t) over 0 … T+1
    x0_cdm = cdm.schedule.x0_from_eps(x_t, t, eps_cdm).clamp(-1, 1)
    figs_x0 = [x0_cdm]
    other = models.get(model_name) if model_name else None
    if other is not None and other.info.data.get("image_size") == cdm.info.data.get("image_size"):
        with torch.no_grad():
            figs_x0.append(other.schedule.x0_from_eps(x_t, t, other.eps(x_t, t)).clamp(-1, 1))
    else:
        other = None
    errors = [float((x - x0).pow(2).mean()) for x in figs_x0]

    expected_t = float((np.arange(len(probs)) * probs).sum())
    level_fig = plots.level_posterior(probs, t, T, expected_t)
    maps = [channel_mean(grad_F), channel_mean(x0_cdm - x0)] + ([channel_mean(figs_x0[1] - x0)] if other else [])
    map_titles = ["∇ₓF(x_t, t)", f"CDM x̂₀ − x₀ (MSE {errors[0]:.4f})"] + \
        ([f"{other.info.name} x̂₀ − x₀ (MSE {errors[1]:.4f})"] if other else [])
    grad_fig = plots.heatmaps(maps, map_titles, shared=False, suptitle=f"t = {t}: the classifier's gradient and each "
                              "denoiser's error (own colour scales)")
    said = (f"True t = {t}; the classifier's guess: argmax {int(probs.argmax())}, mean {expected_t:.0f}. "
            f"x̂₀ error (MSE, [−1, 1] units): CDM {errors[0]:.4f}"
            + (f", {other.info.name} {errors[1]:.4f}" if other else "") + ".")
    ddm_img = big(figs_x0[1][0]) if other else None
    return big(x_t[0]), big(x0_cdm[0]), ddm_img, level_fig, grad_fig, said


def likelihood(cdm, x0: torch.Tensor, seed: int = 0):
    """The CDM's one-pass likelihood of the clean image x0 (1, C, H, W) → (its place among the test images'
    bits/dim, a histogram figure; the sentence that gives the raw and the complexity-corrected score)."""
    clean = dequantize(x0.cpu(), torch.Generator().manual_seed(int(seed))).to(x0.device)
    with torch.no_grad():
        bpd = float(cdm.bits_per_dim(clean)[0])
    png = float(png_bits_per_dim(x0)[0])
    metrics = cdm.info.metrics
    fig = plots.bpd_histogram(metrics.get("nll_histogram"), bpd, metrics.get("ood_bpd", {}))
    text = (f"Your image: raw likelihood **{bpd:.2f} bits/dim**"
            + (f" (test images: mean {metrics['nll_bpd']:.2f})" if "nll_bpd" in metrics else "")
            + f"; PNG needs {png:.2f} bits/dim, so the complexity-corrected score is **{bpd - png:+.2f}**"
            + _corrected_reference(cdm.info.name, bpd - png) + ".")
    return fig, text


def _corrected_reference(cdm_name: str, corrected: float) -> str:
    """How the corrected score compares with training images, when a calibration uses this CDM."""
    cal = calibration_for_cdm(cdm_name)
    if cal is None or "complexity" not in cal.mean:
        return ""
    m, s = cal.mean["complexity"], cal.std["complexity"]
    z = (corrected - m) / s
    verdict = "like the training images" if z <= 2 else "unlike the training images (simpler or stranger than clothes)"
    return f" (training images: {m:+.2f} ± {s:.2f}; yours is {z:+.1f} σ from them: {verdict})"


def build(model_box: gr.Dropdown, image: gr.Image) -> None:
    names = models.listing(CDM_KINDS)
    gr.Markdown(EXPLAIN)
    if not names:
        gr.Markdown(f"*No CDM checkpoint in {models.CHECKPOINT_DIR.name}/ — train one with `jdx train cdm`.*")
        return
    with gr.Row():
        cdm = gr.Dropdown(names, value=names[0], label="noise-level classifier", elem_id="cdm-picker")
        t = gr.Slider(1, models.get(names[0]).schedule.T, value=200, step=1, label="noise level t", elem_id="cdm-t")
        seed = gr.Number(0, precision=0, label="noise seed")
    run = gr.Button("Classify the noise level", variant="primary", elem_id="cdm-btn")
    with gr.Row():
        x_t = gr.Image(label="x_t", format="png", interactive=False, elem_classes="pixelated", height=180,
                       elem_id="cdm-xt")
        x0_cdm = gr.Image(label="CDM x̂₀", format="png", interactive=False, elem_classes="pixelated", height=180)
        x0_ddm = gr.Image(label="x̂₀ of the picked model", format="png", interactive=False,
                          elem_classes="pixelated", height=180)
    summary = gr.Markdown(elem_id="cdm-summary")
    with gr.Row():
        level_fig = gr.Plot(label="p(t | x_t)", show_label=False)
        bpd_fig = gr.Plot(label="bits/dim", show_label=False)
    grad_fig = gr.Plot(label="gradient", show_label=False)
    outputs = [x_t, x0_cdm, x0_ddm, level_fig, grad_fig, bpd_fig, summary]
    clear_when([image.change, model_box.change], outputs, "**Classify the noise level**")
    clear_on_failure(follow([run.click, t.release, cdm.change], models.if_image(noise_level, 7),
                            [model_box, image, cdm, t, seed], outputs, api_name="noise_level"), outputs)
