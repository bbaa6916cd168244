"""The whole page: a model picker and the image (upload, draw, or an example) on the left, the views in
tabs on the right. Every event has an api_name, so everything here is scriptable with gradio_client."""
from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import torch
from PIL import Image

from . import (auxiliary, counterfactual, denoise, gradients, gradio_fixes, learn, lesson, models, noise_level,
               predict, representations)

gradio_fixes.install()

EXAMPLES = models.ROOT / "assets" / "examples"
MAX_UPLOAD = "10mb"
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; image-rendering: crisp-edges; }
#jdx-header h1 { margin-bottom: 0; }
#input-image img { min-width: 196px; min-height: 196px; object-fit: contain; }
#cf-compare img { object-fit: contain; }
#jdx-header p { margin-top: 0.2em; color: var(--body-text-color-subdued); }
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="amber", neutral_hue="slate",
                       # system fonts only: the page must work with no network (a Google font would be fetched)
                       font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
INTRO = """# JDX — the Joint Diffusion eXplorer
One diffusion network that both **generates** and **classifies**. Give it an image on the left, then look
inside: what it predicts and why, how it denoises step by step, the gradients that steer it, and how it
would edit your image into another class."""
NOT_AN_IMAGE = ("That file is not an image this app can read ({why}). Upload a PNG, JPEG, WebP, BMP or GIF "
                f"of at most {MAX_UPLOAD}.")


def guard_uploads(component: gr.Image) -> gr.Image:
    """Gradio decodes an upload before any handler runs; turn its decoding errors into a readable message."""
    decode = component.preprocess

    def preprocess(payload):
        try:
            return decode(payload)
        except gr.Error:
            raise
        except Exception as e:   # noqa: BLE001 — whatever PIL raises, the user sees one clear sentence
            raise gr.Error(NOT_AN_IMAGE.format(why=e.__class__.__name__)) from e
    component.preprocess = preprocess
    return component


def example_paths() -> list[str]:
    return sorted(str(p) for p in EXAMPLES.glob("*.png"))


def pick_example(name: str = "", evt: gr.SelectData | None = None) -> str:
    """Gallery click (or an example's file name, for API callers) → that example becomes the image."""
    paths = example_paths()
    if evt is not None:
        return paths[evt.index]
    hits = [p for p in paths if Path(p).name == name or Path(p).stem == name]
    if not hits:
        raise gr.Error(f"no example {name!r}; examples: {', '.join(Path(p).name for p in paths)}")
    return hits[0]


def use_drawing(sketch: dict | None) -> Image.Image:
    """The sketch (dark strokes on a transparent canvas) on white: the image preparation then inverts it to
    the light-on-dark look of the training data."""
    composite = (sketch or {}).get("composite")
    if composite is None:
        raise gr.Error("Draw something first.")
    rgba = composite.convert("RGBA")
    if rgba.getchannel("A").getextrema()[1] == 0:
        raise gr.Error("The canvas is empty: draw something first.")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("L")


def build(default: str | None = None) -> gr.Blocks:
    names = models.listing()
    if not names:
        raise SystemExit(f"no joint or diffusion checkpoints in {models.CHECKPOINT_DIR}; train one with `jdx train`")
    default = default or os.environ.get("JDX_CHECKPOINT", "")
    default = Path(default).name if default else names[0]
    if default not in names:
        raise SystemExit(f"checkpoint {default!r} not found in {models.CHECKPOINT_DIR}; available: {', '.join(names)}")
    first = models.get(default)
    classes = first.info.class_names
    with gr.Blocks(title="JDX — Joint Diffusion eXplorer") as demo:
        gr.Markdown(INTRO, elem_id="jdx-header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                model_box = gr.Dropdown(names, value=default, label="model", elem_id="model-picker")
                about = gr.Markdown(models.describe(first), elem_id="model-info")
                image = guard_uploads(gr.Image(type="filepath", label="your image (any size; light backgrounds "
                                               "are inverted to match the data)", sources=["upload", "clipboard"],
                                               format="png", height=260, elem_id="input-image",
                                               elem_classes="pixelated"))
                gallery = gr.Gallery(example_paths(), label="examples — click one", columns=6, height=220,
                                     allow_preview=False, elem_id="examples")
                with gr.Accordion("…or draw one", open=False):
                    sketch = gr.Sketchpad(type="pil", label="draw (dark on light)", canvas_size=(280, 280),
                                          brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=16))
                    use = gr.Button("Use this drawing")
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Predict", id="predict"):
                        predict.build(model_box, image, classes)
                    with gr.Tab("Denoise", id="denoise"):
                        denoise.build(model_box, image, classes)
                    with gr.Tab("Gradients", id="gradients"):
                        gradients.build(model_box, image, classes)
                    with gr.Tab("Counterfactual", id="counterfactual"):
                        counterfactual.build(model_box, image, classes)
                    with gr.Tab("Noise-level classifier", id="noise-level"):
                        noise_level.build(model_box, image)
                    with gr.Tab("Representations", id="representations"):
                        representations.build(model_box, image, first)
                    with gr.Tab("Auxiliary variables", id="auxiliary"):
                        auxiliary.build(image)
                    with gr.Tab("Learn", id="learn"):
                        with gr.Accordion("A guided lesson for a class (presenter mode)", open=False):
                            lesson.build(model_box, image, classes, example_paths())
                        learn.build(model_box, image)
        model_box.change(lambda n: models.describe(models.get(n)), model_box, about, api_name="model_info")
        example_name = gr.Textbox(visible=False, label="example file name")
        gallery.select(pick_example, example_name, image, api_name="example")
        use.click(use_drawing, sketch, image, api_name="use_drawing")
    return demo


def serving_threads() -> int:
    """PyTorch CPU threads while serving: all cores but one, which stays free for the web server (queue,
    PNG and plot encoding). On the 2-core reference machine one compute thread answered a counterfactual
    over HTTP in 1.4–1.8 s against 2.2–2.4 s with two (bench/app_latency.py; README)."""
    return int(os.environ.get("JDX_THREADS", max(1, (os.cpu_count() or 2) - 1)))


def launch(demo: gr.Blocks, **kwargs):
    """Local by default (127.0.0.1); uploads capped; never shared."""
    if models.device().type == "cpu":
        torch.set_num_threads(serving_threads())
    options = dict(server_name=os.environ.get("JDX_HOST", "127.0.0.1"), max_file_size=MAX_UPLOAD, css=CSS + lesson.CSS,
                   theme=THEME, show_error=True)
    options.update(kwargs)
    options["share"] = False
    return demo.queue(default_concurrency_limit=int(os.environ.get("JDX_CONCURRENCY", "1"))).launch(**options)
