"""Predict view: p(y | x) from the joint model's shared classifier, what the model sees (and each step of
preparing an upload), whether the picture is like the training data at all (the OOD score), attributions
that pass the model-randomisation check, and how the prediction holds up as the image is noised."""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import gradio as gr
import numpy as np
import torch

from ..attribution import DEFAULT, attribute as attribution_maps, sanity_label
from ..explain import noise_robustness
from ..ood import Detector, standardised
from . import compute
from .compute import on_compute_thread
from . import models, native, plots
from .errors import clear_on_failure, follow, FOLLOW, Latest
from .pictures import big, channel_mean

EXPLAIN = """**What you see.** The same network that removes noise also says what the picture is: its
encoder's features feed a small classifier. *Attributions* colour the pixels that pushed the raw score
(logit) of a class up (red) or down (blue). **Expected gradients** (the default) averages Integrated
Gradients over random noise baselines; **noisy gradient × input** averages the gradient over noised
copies of your image. An explanation must depend on the model: each title says whether the method passes
the *randomisation check* — re-draw the classifier's weights and the map must change (Adebayo et al.
2018). The check was measured once for this model on test images, so the title is the same for every
picture: ρ is the rank correlation of the maps before and after re-drawing the head's / all weights, and a
low ρ (the map changed) passes. **Integrated Gradients from a black image fails it**: it is zero on every background pixel whatever
the weights, so it mostly outlines your picture; it is shown to teach that. The *robustness* plot noises
your image more and more (t from 0 to T) and asks the classifier again. A classifier always names one of
its classes — the **OOD check** below the label says whether your picture is like the training data at all."""

APP_METHODS = (DEFAULT, "noisy gradient × input", "Integrated Gradients (black baseline)")
SHORT = {"noisy gradient × input": "noisy grad × input", "Integrated Gradients (black baseline)": "IG, black baseline"}


def _verdict(label: str) -> str:
    """'passes the randomisation check (ρ 0.36 head / 0.17 all re-drawn)' → 'passes: ρ 0.36 / 0.17' (a panel title)."""
    return (label.replace(" the randomisation check (ρ ", ": ρ ").replace(" head / ", " / ")
            .replace(" all re-drawn)", ""))


class Reading(NamedTuple):
    probs: torch.Tensor                   # (B, K) p(y | x)
    features: torch.Tensor | None         # (B, F) the pooled features a joint model's head read; None otherwise


def _read(model_name: str, x: torch.Tensor) -> Reading:
    """p(y | x) and, for a joint model, the features its head read: the OOD detector scores those same
    features, so one encoder pass serves both (it ran twice per prediction before)."""
    model = models.get(model_name)
    if not hasattr(model, "features"):
        return Reading(model.predict(x).cpu(), None)
    with torch.no_grad():
        f = model.features(x.to(next(model.parameters()).device), 0)
        return Reading(model.head(f).float().softmax(-1).cpu(), f.float())


# Concurrent predictions of the same model share one forward pass (a class of students uploading at once).
_BATCHED = compute.Batcher(_read)


@lru_cache(maxsize=8)
def detector(model) -> Detector | None:
    """The model's OOD detector (loaded models are cached, so is this), or None without a calibration."""
    return Detector.for_model(model, model.info.path)


def ood_note(model, x: torch.Tensor, features: torch.Tensor | None = None) -> str:
    """A sentence (Markdown) on whether x is like the training data, with the score and what it means
    (features: x's pooled features, if the prediction already computed them)."""
    det = detector(model)
    if det is None:
        return "*No out-of-distribution calibration for this checkpoint: the app cannot say whether your " \
               "picture is like the training data.*"
    r = det(x, features=features)
    score, thr = float(r.score[0]), r.threshold
    z = {k: float(v[0]) for k, v in standardised(r.components, det.cal).items()}
    # "feature distance −0.9 σ" read as a negative distance: say where it lies against the training images
    why = ", ".join(f"{k.replace('_', ' ')} {abs(v):.1f} σ {'above' if v >= 0 else 'below'} the training images' mean"
                    for k, v in z.items())
    if not bool(r.in_distribution[0]):
        return (f"### ⚠ This picture is unlike the training data\nOOD score **{score:.2f}** > threshold {thr:.2f} "
                f"({det.cal.percentile:.0f} % of training images score below it; {why}). The classifier must still "
                "name one of its classes, so **the label above means little here**.")
    return (f"✓ Like the training data: OOD score {score:.2f} ≤ threshold {thr:.2f} "
            f"({det.cal.percentile:.0f} % of training images score below it; {why}).")


def ood_warning(model, x: torch.Tensor) -> str:
    """'' when x is like the training data (or no calibration ships); else a warning for views that edit or
    explain x (the Counterfactual view), where a confident answer on noise would read as meaningful."""
    det = detector(model)
    r = None if det is None else det(x)
    if r is None or bool(r.in_distribution[0]):
        return ""
    return (f"⚠ **Your picture (the input) is unlike the training data** (OOD score {float(r.score[0]):.2f} > threshold "
            f"{r.threshold:.2f}): the classifier must name one of its classes anyway, so the edit shows what moves "
            "its label, not what the picture would need to become a garment of that class.")


def predict(model_name: str, image):
    """→ ({class: probability}, OOD note with what was done to the upload). Text only: the pictures of the
    preparation come from `prepared`, so an API client or agent asking for the label downloads no files."""
    model = compute.run(lambda: models.require_classifier(models.get(model_name)))
    x, prep = models.prepared_input(model, image)      # here, not in the batch: a bad upload fails alone
    probs, features = _BATCHED(model_name, x)
    probs = probs[0].numpy()
    note = compute.run(lambda: ood_note(model, x, features))
    # "Nothing" is about the format (size, grey levels, background), not the content: "already looks like the
    # training images" stood under "⚠ unlike the training data" for a gallery example (walkthrough).
    done = ("; ".join(prep.steps) if prep.steps else
            "nothing: it already has the training images' format ({0}×{0} pixels, dark background)".format(
                model.info.data.get("image_size")))
    return ({n: float(p) for n, p in zip(model.info.class_names, probs)},
            f"{note}\n\n**What was done to your upload:** {done}.")


def prepared(model_name: str, image):
    """→ (the model input enlarged, each step of preparing the upload as (picture, caption))."""
    model = compute.run(models.get, model_name)
    x, prep = models.prepared_input(model, image)
    x = x.cpu()
    return big(x[0]), [(img, cap) for cap, img in prep.stages] or [(big(x[0], 96), "as uploaded")]


@on_compute_thread
def attribute(model_name: str, image, target: str = "predicted class"):
    """Sanity-checked attributions (and the failing black-baseline IG, labelled) of the raw logit of the
    predicted or the chosen class, over the model input."""
    model = models.require_classifier(models.get(model_name))
    x = models.image_input(model, image)
    names = model.info.class_names
    k = int(model.predict(x)[0].argmax()) if target in (None, "", "predicted class") else models.class_index(model, target)
    maps = [attribution_maps(model, x, k, m)[0][0].numpy() for m in APP_METHODS]
    titles = [f"{SHORT.get(m, m)}\n{names[k]} logit\n{_verdict(sanity_label(m, model.info.name))}" for m in APP_METHODS]
    return plots.overlays(channel_mean(x), maps, titles)


@on_compute_thread
def robustness(model_name: str, image, draws: int = 4):
    """p(y | x_t, t) for t = 0 … T (mean over a few noise draws): how much noise the prediction survives — a
    table (noise level t, probability, class) for the page's native line plot."""
    model = models.require_classifier(models.get(model_name))
    x = models.image_input(model, image)
    T = model.schedule.T
    ts = np.linspace(0, T, 21).round().astype(int).tolist()
    probs = noise_robustness(model, x, ts, draws=int(draws)).numpy()
    names = model.info.class_names
    return native.padded(native.class_curves(ts, probs, names), names)


PREDICT_CONCURRENCY = 16      # handlers mostly wait for the compute thread; more in flight → bigger batches


def build(model_box: gr.Dropdown, image: gr.Image, class_names: list[str]) -> None:
    gr.Markdown(EXPLAIN)
    run = gr.Button("Classify", variant="primary", elem_id="predict-btn")
    with gr.Row():
        with gr.Column(scale=1):
            label = gr.Label(num_top_classes=5, label="p(y | x) — the joint model's classifier",
                             elem_id="predict-label")
            note = gr.Markdown(elem_id="predict-ood")
            seen = gr.Image(label="what the model sees (28×28, enlarged)", format="png", interactive=False,
                            elem_classes="pixelated", height=200, elem_id="predict-seen")
            # One small row of thumbnails (the upload, each preparation step): it left a tall blank box.
            stages = gr.Gallery(label="each step of preparing your upload", columns=5, height="auto",
                                object_fit="contain", allow_preview=False, elem_id="predict-stages",
                                elem_classes="pixelated")
        with gr.Column(scale=2, elem_id="predict-plots"):
            target = gr.Dropdown(["predicted class"] + class_names, value="predicted class",
                                 label="attribute to class")
            attr = gr.Plot(label="attributions (captum)", show_label=False)
            robust = gr.LinePlot(x="noise level t", y="probability", color="class", y_lim=[0, 1], height=340,
                                 color_map=native.colours(class_names),
                                 title="prediction as the image is noised (hover a line to read it)",
                                 label="prediction vs. noise level", show_label=False,
                                 tooltip="all", elem_id="predict-robust")
    inputs = [model_box, image]
    event = follow([run.click, image.change, model_box.change], models.if_image(predict, 2, say_at=1), inputs,
                   [label, note], api_name="predict", concurrency_limit=PREDICT_CONCURRENCY)
    # A new picture makes the previous one's follow-ups stale: answers that finish after it are dropped.
    latest = Latest()
    gr.on([run.click, image.change, model_box.change], latest.changed, None, None, queue=False,
          api_visibility="private", show_progress="hidden")
    # FOLLOW: a follow-up for the new picture that arrives while the old one's runs is deferred, not dropped.
    def current(fn, n_outputs: int = 1):
        return latest.only_current(models.if_image(fn, n_outputs, warn=False))
    event.success(current(prepared, 2), inputs, [seen, stages], api_name="prepared",
                  concurrency_limit=PREDICT_CONCURRENCY, show_progress="hidden", trigger_mode=FOLLOW)
    explained = event.success(current(attribute), inputs + [target], attr, api_name="attribute", trigger_mode=FOLLOW)
    explained.success(current(robustness), inputs, robust, api_name="robustness", trigger_mode=FOLLOW) \
        .success(native.legend, robust, robust, queue=False, api_name=False, show_progress="hidden")
    clear_on_failure(event, [label, seen, note, stages, attr, robust])     # no old answer beside an error
    clear_on_failure(explained, [attr, robust])
    clear_on_failure(target.change(models.if_image(attribute, 1), inputs + [target], attr, api_name="attribute_class"),
                     [attr])
