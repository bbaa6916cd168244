"""The whole page: a model picker and the image (upload, draw, or an example) on the left, the views in
tabs on the right. Every event has an api_name, so everything here is scriptable with gradio_client."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import gradio as gr
from PIL import Image

from . import (auxiliary, compute, counterfactual, denoise, gradients, gradio_fixes, learn, lesson, models,
               noise_level, predict, representations)
from .errors import follow

gradio_fixes.install()

EXAMPLES = models.ROOT / "assets" / "examples"
MAX_UPLOAD = "10mb"
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; image-rendering: crisp-edges; }
#jdx-header h1 { margin-bottom: 0; }
#input-image img { min-width: 196px; min-height: 196px; object-fit: contain; }
#cf-compare img { object-fit: contain; }
#jdx-header p { margin-top: 0.2em; color: var(--body-text-color-subdued); }
/* Gradio floats a component's label over its top-left corner, where it hid the top class of p(y|x), the first
   frames of strips and the before/after pair: put every label above its content instead. */
label[data-testid="block-label"].float { position: relative !important; top: 0 !important; left: 0 !important;
  margin: 0 0 6px 0 !important; box-shadow: none; }
/* …and with the label above, a fixed-height image block kept its height and cut the picture's bottom off by the
   label's height: the picture takes what the label leaves. */
.block:has(> label[data-testid="block-label"].float:not(.sr-only)):has(> .image-container img) {
  height: auto !important; }
/* All 30 examples at once: six small thumbnails a row, no inner scrolling either way. */
#examples, #examples .gallery-container, #examples .grid-wrap { max-height: none !important; height: auto !important;
  min-height: 0 !important; overflow: visible !important; }
#examples .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important; gap: 4px !important;
  padding-top: 0 !important; }
#examples .grid-container { grid-auto-rows: auto !important; }
#examples .thumbnail-item { min-width: 0 !important; width: 100% !important; height: auto !important;
  aspect-ratio: 1 / 1; }
#examples .icon-button-wrapper { display: none !important; }
.pixelated img { object-fit: contain; }
/* An output image's buttons (full screen, download, share) sat on its top-right frames: show them on hover. */
.image-container .icon-button-wrapper { opacity: 0; transition: opacity 0.15s; }
.image-container:hover .icon-button-wrapper, .image-container:focus-within .icon-button-wrapper { opacity: 1; }
#examples .thumbnail-item img { image-rendering: pixelated; }
/* Predict's preparation steps: one row of small captioned thumbnails (a full-width box left a tall blank). */
#predict-stages .gallery-container, #predict-stages .grid-wrap { max-height: none !important; height: auto !important;
  min-height: 0 !important; overflow: visible !important; }
#predict-stages .grid-container { grid-template-columns: repeat(auto-fill, 104px) !important; grid-auto-rows: auto !important;
  gap: 6px !important; padding-top: 0 !important; }
#predict-stages .thumbnail-item { width: 104px !important; min-width: 0 !important; height: auto !important;
  aspect-ratio: 1 / 1; }
#predict-stages .thumbnail-item img { image-rendering: pixelated; }
#predict-stages .caption-label { font-size: 11px !important; max-width: 96% !important; padding: 1px 4px !important; }
#predict-stages .icon-button-wrapper { display: none !important; }
/* The GIF's file box before an export: Gradio's empty state is 236 px tall, a blank column beside its button. */
#gif-file .empty { min-height: 0 !important; height: 72px !important; }
/* Markdown tables break words anywhere ("diffusio / n"): break between words only. */
.prose table th, .prose table td { word-break: normal !important; overflow-wrap: normal !important; }
"""
SELECT_BRUSH = """() => { let tries = 0; const timer = setInterval(() => {
  const brush = document.querySelector('#sketch button[aria-label="Brush"]');
  if (brush && !brush.classList.contains('highlight')) brush.click();
  if ((brush && brush.classList.contains('highlight')) || ++tries > 50) clearInterval(timer); }, 200); }"""
# Typing into a slider's number box (Gradio 6.31): clicking into the box fired "release" (which the lesson's
# sliders listen to) with the value already there, and the release on leaving the box, with the typed value, was
# dropped while that stale run was busy — each redraw showed the value typed before (a helper typed 150, 400,
# 250 into lesson step 6 and saw t = 200, 150, 400; the requests showed 200, then 150). Enter did nothing. Now
# a click into the box sends nothing, and leaving it (Enter leaves it) clamps the value to the slider's range,
# reports it as an input and ends with a pointer-up, whose handler waits a tick and sends "release" with it.
# The capture listeners stop Gradio's own blur and click handling before they run.
ENTER_COMMITS = """<script>
const sliderBox = (el) => el instanceof HTMLInputElement && el.type === 'number'
  && el.closest('.block')?.querySelector('input[type=range]');
document.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && sliderBox(e.target)) e.target.blur();
});
document.addEventListener('pointerup', (e) => {
  // a click *into* the box: Gradio treats it as a drag's end and sends the value already there; the
  // synthetic pointer-up below (not trusted) goes through
  if (e.isTrusted && sliderBox(e.target)) e.stopPropagation();
}, true);
// An upload the browser cannot draw (a text file named .png) left a broken-image icon in the picture box
// beside the "not an image" message: empty the box, as its "Remove Image" button does — but only once that
// message is on screen (or after 15 s): emptying it at once raced the upload's own event, and in CI the
// message never came. (Checked a moment after any image fails: the failing <img> may not be in the box yet.)
document.addEventListener('error', (e) => {
  if (!(e.target instanceof HTMLImageElement)) return;
  let waited = 0;
  const timer = setInterval(() => {
    waited += 250;
    const broken = [...document.querySelectorAll('#input-image img')].some((i) => i.complete && !i.naturalWidth);
    if (!broken) { if (waited > 1000) clearInterval(timer); return; }
    if (document.querySelector("[data-testid='toast-body'].error") || waited >= 15000) {
      clearInterval(timer);
      document.querySelector('#input-image button[aria-label="Remove Image"]')?.click();
    }
  }, 250);
}, true);
document.addEventListener('blur', (e) => {
  const range = sliderBox(e.target);
  if (!range) return;
  e.stopPropagation();
  const box = e.target, v = Number(box.value);
  const clamped = Math.min(Math.max(v, Number(range.min)), Number(range.max));
  if (box.value !== '' && clamped !== v) {
    box.value = String(clamped);
    box.dispatchEvent(new Event('input', {bubbles: true}));
  }
  box.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));
}, true);
</script>"""
# A first-time visitor who opens a tab should see an answer, not empty panes: the first time a tab is shown while
# a picture is loaded and its answer pane is still empty, its main button is pressed for them (in the browser, so
# it is the same event as a click: same queue, progress bar and error handling). (button id, a selector that
# exists once the tab has an answer) per tab; the Predict tab answers on page load already.
FIRST_VISIT = {
    "denoise": [("denoise-btn", "#denoise-xt img")],
    "gradients": [("gradients-btn", "#gradients-xt img")],
    "counterfactual": [("cf-btn", "#cf-compare img")],
    "noise-level": [("cdm-btn", "#cdm-xt img")],
    "representations": [("rep-btn", "#rep-maps img")],
    "auxiliary": [("aux-btn", "#aux-summary p"), ("aux-image-btn", "#aux-forward img")],
}


def first_visit_js(presses: list[tuple[str, str]]) -> str:
    """The tab's select listener: wait until its buttons are rendered (tabs mount on first show), then press each
    one whose answer pane is empty — once per page, so a pane emptied by a failed action is not re-run."""
    pairs = ", ".join(f"['{button}', '{answer}']" for button, answer in presses)
    return f"""() => {{ const done = (window.jdxFirstVisit = window.jdxFirstVisit || {{}});
  let tries = 0; const timer = setInterval(() => {{
    const ready = [{pairs}].every(([b]) => document.getElementById(b));
    if (!ready && ++tries < 50) return;
    clearInterval(timer);
    if (!document.querySelector('#input-image img')) return;
    for (const [b, answer] of [{pairs}]) {{
      if (done[b] || document.querySelector(answer)) continue;
      done[b] = true; document.getElementById(b)?.click();
    }} }}, 100); }}"""


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
    """Gradio decodes an upload before any handler runs; turn its decoding errors into a readable message —
    said once: every view listening to the image decodes it, and one bad file gave eight identical red
    toasts. The other listeners fail silently (their old outputs are still cleared, jdx/ui/errors.py)."""
    decode = component.preprocess
    said: dict[str, float] = {}                # file → when its error was shown
    lock = threading.Lock()

    def preprocess(payload):
        try:
            return decode(payload)
        except gr.Error:
            raise
        except Exception as e:   # noqa: BLE001 — whatever PIL raises, the user sees one clear sentence
            key = str(getattr(payload, "path", payload))
            now = time.monotonic()
            with lock:
                first = now - said.get(key, -1e9) > 10      # (the same file again later: said again)
                said[key] = now
            raise gr.Error(NOT_AN_IMAGE.format(why=e.__class__.__name__), visible=first,
                           print_exception=first) from e
    component.preprocess = preprocess
    return component


def example_paths() -> list[str]:
    return sorted(str(p) for p in EXAMPLES.glob("*.png"))


def pick_example(name: str) -> str:
    """An example's file name (or stem) → that example becomes the image (the /example endpoint)."""
    paths = example_paths()
    hits = [p for p in paths if Path(p).name == name or Path(p).stem == name]
    if not hits:
        raise gr.Error(f"no example {name!r}; examples: {', '.join(Path(p).name for p in paths)}")
    return hits[0]


def click_example(evt: gr.SelectData) -> str:
    """A gallery click → that example. The hint must be exactly gr.SelectData: Gradio 6 passes the event only
    then (with `gr.SelectData | None` every click failed with "no example None")."""
    return example_paths()[evt.index]


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
    # A stroke along the canvas edge is fine: the preparation's background fit leaves border pixels that belong
    # to the drawing out (jdx.photo.border_plane).
    return Image.alpha_composite(white, rgba).convert("L")


FIRST_EXAMPLE = "7-sneaker-0.png"       # loaded when the page opens: a first-time visitor sees answers at once
TAB_NAMES = {"predict": "Predict", "denoise": "Denoise", "gradients": "Gradients", "counterfactual": "Counterfactual",
             "noise-level": "Noise level", "representations": "Representations", "auxiliary": "Auxiliary",
             "learn": "Learn"}     # short: all eight fit in one row from 1280 px on, with no "⋯" menu


def first_example() -> str | None:
    paths = example_paths()
    hits = [p for p in paths if Path(p).name == FIRST_EXAMPLE]
    return (hits or paths or [None])[0]


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
                # The label sits above the picture (a Markdown line), not on it: Gradio draws a component's
                # label over the top-left corner of an image, where it hid the garment.
                gr.Markdown("**Your image** — any size; light backgrounds are inverted to match the data",
                            elem_id="input-image-label")
                image = guard_uploads(gr.Image(type="filepath", label="your image", show_label=False,
                                               sources=["upload", "clipboard"], format="png", height=240,
                                               elem_id="input-image", elem_classes="pixelated"))
                gallery = gr.Gallery(example_paths(), label="examples — click one", show_label=True, columns=6,
                                     height="auto", allow_preview=False, object_fit="contain", elem_id="examples",
                                     elem_classes="pixelated")
                with gr.Accordion("…or draw one", open=False, elem_id="draw-accordion") as draw_box:
                    gr.Markdown("Draw a garment as a filled silhouette (a T-shirt, trousers, a shoe, a bag): the "
                                "model knows clothes, not line drawings. The thick brush fills fast; the canvas is "
                                "shrunk to 28×28 pixels. Then press **Use this drawing**.", elem_id="draw-hint")
                    sketch = gr.Sketchpad(type="pil", label="draw (dark on light)", show_label=False,
                                          canvas_size=(280, 280), height=380, layers=False, elem_id="sketch",
                                          brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=24))
                    use = gr.Button("Use this drawing", elem_id="use-drawing")
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab(TAB_NAMES["predict"], id="predict"):
                        predict.build(model_box, image, classes)
                    with gr.Tab(TAB_NAMES["denoise"], id="denoise") as tab:
                        denoise.build(model_box, image, classes)
                    tab.select(None, None, None, js=first_visit_js(FIRST_VISIT["denoise"]))
                    with gr.Tab(TAB_NAMES["gradients"], id="gradients") as tab:
                        gradients.build(model_box, image, classes)
                    tab.select(None, None, None, js=first_visit_js(FIRST_VISIT["gradients"]))
                    with gr.Tab(TAB_NAMES["counterfactual"], id="counterfactual") as tab:
                        counterfactual.build(model_box, image, classes)
                    tab.select(None, None, None, js=first_visit_js(FIRST_VISIT["counterfactual"]))
                    with gr.Tab(TAB_NAMES["noise-level"], id="noise-level") as tab:
                        noise_level.build(model_box, image)
                    tab.select(None, None, None, js=first_visit_js(FIRST_VISIT["noise-level"]))
                    with gr.Tab(TAB_NAMES["representations"], id="representations") as tab:
                        representations.build(model_box, image, first)
                    tab.select(None, None, None, js=first_visit_js(FIRST_VISIT["representations"]))
                    with gr.Tab(TAB_NAMES["auxiliary"], id="auxiliary") as tab:
                        auxiliary.build(image)
                    tab.select(None, None, None, js=first_visit_js(FIRST_VISIT["auxiliary"]))
                    with gr.Tab(TAB_NAMES["learn"], id="learn"):
                        with gr.Accordion("A guided lesson for a class (presenter mode)", open=False):
                            lesson.build(model_box, image, classes, example_paths())
                        learn.build(model_box, image)
        follow(model_box.change, lambda n: models.describe(models.get(n)), model_box, about, api_name="model_info")
        example_name = gr.Textbox(visible=False, label="example file name")
        gallery.select(click_example, None, image, api_name=False)
        example_name.submit(pick_example, example_name, image, api_name="example")   # for API callers
        # Gradio's editor starts with no tool chosen ("select the draw tool to start"): pick the brush as
        # soon as the canvas is shown, so the first stroke draws.
        draw_box.expand(None, None, None, js=SELECT_BRUSH)
        sketch.clear(None, None, None, js=SELECT_BRUSH)      # "Clear canvas" deselected the brush too
        use.click(use_drawing, sketch, image, api_name="use_drawing")
        # An upload or a drawing replaces the example: its thumbnail stayed highlighted (walkthrough). The page
        # ignores selected_index=None; no thumbnail has index −1.
        gr.on([image.upload, use.click], lambda: gr.update(selected_index=-1), None, gallery, queue=False,
              api_visibility="private", show_progress="hidden")
        start = first_example()
        if start is not None:     # the image's change event then fills the Predict and Learn views
            demo.load(lambda: start, None, image, api_name=False, show_progress="hidden")
    return demo


serving_threads = models.serving_threads     # (bench/app_latency.py imports it from here)


def launch(demo: gr.Blocks, **kwargs):
    """Local by default (127.0.0.1); uploads capped; never shared."""
    if models.device().type == "cpu":
        compute.set_threads(serving_threads())
    # allowed_paths: the examples are served from the repository whatever the working directory (the page
    # opens on one, and a gallery click returns one).
    options = dict(server_name=os.environ.get("JDX_HOST", "127.0.0.1"), max_file_size=MAX_UPLOAD,
                   css=CSS + lesson.CSS, theme=THEME, head=ENTER_COMMITS, show_error=True, allowed_paths=[str(EXAMPLES)])
    options.update(kwargs)
    options["share"] = False
    return demo.queue(default_concurrency_limit=int(os.environ.get("JDX_CONCURRENCY", "1"))).launch(**options)
