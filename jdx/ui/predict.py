"""Predict view: p(y | x) from the joint model's shared classifier, what the model sees, captum
attributions, and how the prediction holds up as the image is noised from t = 0 to T."""
from __future__ import annotations

import gradio as gr
import numpy as np

from ..explain import ATTRIBUTIONS, noise_robustness
from . import compute
from .compute import on_compute_thread
from . import models, plots
from .pictures import big, channel_mean

EXPLAIN = """**What you see.** The same network that removes noise also says what the picture is: its
encoder's features feed a small classifier. *Attributions* colour the pixels that pushed the score of a
class up (red) or down (blue): **Integrated Gradients** adds up the gradient along a path from a black
image to yours; **SmoothGrad** averages the gradient's size over many slightly noisy copies. The
*robustness* plot noises your image more and more (t from 0 to T) and asks the classifier again — a
diffusion classifier is trained on noisy images too, so its belief fades gradually instead of collapsing."""


def _probs(model_name: str, x):
    return models.get(model_name).predict(x).cpu()


# Concurrent predictions of the same model share one forward pass (a class of students uploading at once).
_BATCHED = compute.Batcher(_probs)


def predict(model_name: str, image):
    """→ ({class: probability}, the 28×28 model input enlarged)."""
    model = compute.run(lambda: models.require_classifier(models.get(model_name)))
    x = models.image_input(model, image)          # here, not in the batch: a bad upload fails alone
    probs = _BATCHED(model_name, x)[0].numpy()
    return {n: float(p) for n, p in zip(model.info.class_names, probs)}, big(x[0])


@on_compute_thread
def attribute(model_name: str, image, target: str = "predicted class"):
    """Integrated Gradients and SmoothGrad for the predicted or the chosen class, over the model input."""
    model = models.require_classifier(models.get(model_name))
    x = models.image_input(model, image)
    names = model.info.class_names
    k = int(model.predict(x)[0].argmax()) if target in (None, "", "predicted class") else _index(names, target)
    maps = [channel_mean(f(model, x, k)) for f in ATTRIBUTIONS.values()]
    return plots.overlays(channel_mean(x), maps, [f"{m} — {names[k]}" for m in ATTRIBUTIONS])


@on_compute_thread
def robustness(model_name: str, image, draws: int = 4):
    """p(y | x_t, t) for t = 0 … T (mean over a few noise draws): how much noise the prediction survives."""
    model = models.require_classifier(models.get(model_name))
    x = models.image_input(model, image)
    T = model.schedule.T
    ts = np.linspace(0, T, 21).round().astype(int).tolist()
    probs = noise_robustness(model, x, ts, draws=int(draws)).numpy()
    return plots.class_curves(ts, probs, model.info.class_names, "noise level t", "prediction as the image is noised")


PREDICT_CONCURRENCY = 16      # handlers mostly wait for the compute thread; more in flight → bigger batches


def _index(names: list[str], name: str) -> int:
    if name not in names:
        raise gr.Error(f"unknown class {name!r}; classes: {', '.join(names)}")
    return names.index(name)


def build(model_box: gr.Dropdown, image: gr.Image, class_names: list[str]) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        with gr.Column(scale=1):
            label = gr.Label(num_top_classes=5, label="p(y | x) — the joint model's classifier")
            seen = gr.Image(label="what the model sees (28×28, enlarged)", format="png", interactive=False,
                            elem_classes="pixelated", height=240)
        with gr.Column(scale=2, elem_id="predict-plots"):
            target = gr.Dropdown(["predicted class"] + class_names, value="predicted class",
                                 label="attribute to class")
            attr = gr.Plot(label="attributions (captum)", show_label=False)
            robust = gr.Plot(label="prediction vs. noise level", show_label=False)
    run = gr.Button("Classify", variant="primary", elem_id="predict-btn")
    inputs = [model_box, image]
    gr.on([run.click, image.change, model_box.change], models.if_image(predict, 2), inputs, [label, seen],
          api_name="predict", concurrency_limit=PREDICT_CONCURRENCY) \
        .success(models.if_image(attribute, 1, warn=False), inputs + [target], attr, api_name="attribute") \
        .success(models.if_image(robustness, 1, warn=False), inputs, robust, api_name="robustness")
    target.change(models.if_image(attribute, 1), inputs + [target], attr, api_name="attribute_class")
