"""Denoise view: the reverse process step by step. Frames stream while they are computed; afterwards a
time slider scrubs the stored trajectory (no recomputation) and the whole run exports as a GIF."""
from __future__ import annotations

import queue
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
from ..protocols import Classifier, supports
import numpy as np
import torch

from ..data import to_uint8
from ..generate import Generation
from ..guidance import one_hot
from ..samplers import SAMPLERS, Step, sample, timesteps
from ..viz import pair_frames, save_gif
from . import batches, compute, models, native
from .errors import clear_on_failure
from .pictures import big

EXPLAIN = """**What you see.** Sampling starts from noise x_T and takes small steps back to a clean image.
At every step the network predicts the noise ε̂ in x_t; from it follows its current guess of the clean
image, **x̂₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t** (right). Early guesses are blurry averages of many possible
images; they sharpen as t falls. **DDIM** steps are deterministic; **DDPM** adds fresh noise every step.
With *class guidance* the classifier's gradient nudges every step toward the chosen class. Starting from
*your image noised to t\\** shows how much of it survives: small t\\* returns almost the same picture."""

NO_GUIDANCE = "no guidance"
FRAME_INTERVAL_S = 0.3          # stream a frame at most every 0.3 s and at most MAX_FRAMES a run: enough to
MAX_FRAMES = 8                  # watch the image form, and 30 users' streams (whose steps each wait for a
                                # shared pass) do not bury the server in PNG encoding
PROGRESS_INTERVAL_S = 0.15      # a progress message per step (50 a run, ×30 users) cost more than the bar gains


def _trajectory(model_name: str, model, steps: list[Step], final: torch.Tensor, logits: dict) -> dict:
    """What the slider needs, as plain arrays: x_t and x̂₀ per step (plus the final sample), and p(y | x_t, t)
    (from the logits the sampling passes gave, and one pass of the encoder on the final sample)."""
    ts = [s.t for s in steps] + [0]
    x_t = torch.cat([torch.stack([s.x_t[0] for s in steps]).cpu(), final[:1].cpu()])
    x0 = torch.cat([torch.stack([s.x0_hat[0] for s in steps]).cpu(), final[:1].cpu()])
    probs = None
    if supports(model, Classifier):
        last = batches.predict_logits(model_name, final[:1])
        probs = torch.cat([logits[t].cpu() for t in ts[:-1]] + [last.cpu()]).float().softmax(-1).numpy()
    return {"t": ts, "x_t": to_uint8(x_t), "x0": to_uint8(x0), "probs": probs, "names": model.info.class_names}


def _frame(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).movedim(-1, 0).float() / 127.5 - 1


DENOISE_CONCURRENCY = 32      # requests mostly wait for the shared U-Net passes; more in flight → bigger passes


def denoise(model_name: str, image, start: str = "pure noise", t_star: int = 500, sampler: str = "ddim",
            steps: int = 50, guide: str = NO_GUIDANCE, scale: float = 8.0, seed: int = 0,
            progress=gr.Progress()):
    """Generator: yields (x_t, x̂₀, caption, trajectory state, slider, probability plot) while sampling."""
    model = compute.run(models.get, model_name)
    T = model.schedule.T
    t_star = int(min(max(int(t_star), 1), T))
    c = model.unet.config
    g = torch.Generator().manual_seed(int(seed))
    if start.startswith("pure"):
        t_star = T
        x_T = torch.randn(1, c.in_channels, c.image_size, c.image_size, generator=g)
    else:
        x = compute.run(models.image_input, model, image).cpu()
        x_T = model.schedule.noise_to(x, t_star, torch.randn(x.shape, generator=g))
    weights = None
    if guide and guide != NO_GUIDANCE and scale > 0:
        models.require_classifier(model)
        weights = one_hot(model.info.class_names.index(guide), model.num_classes)
    if sampler not in SAMPLERS:
        raise gr.Error(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")

    # The library's sampler runs whole in a worker thread; its callback hands each Step to this generator,
    # which yields frames in between (the UI has no sampling loop of its own). Each step's U-Net pass is
    # shared with the concurrent requests' steps (batches.denoiser), which also hands back p(y | x_t, t).
    logits: dict[int, torch.Tensor] = {}
    eps_fn = batches.denoiser(model_name, weights, float(scale), on_logits=logits.__setitem__)
    ts = timesteps(t_star, int(steps))
    recorded: list[Step] = []
    steps_in: queue.Queue = queue.Queue()
    ran: dict = {}

    stop = threading.Event()             # set when the page goes away: the sampler stops at its next step

    def eps_or_stop(x_t: torch.Tensor, t: int) -> torch.Tensor:
        if stop.is_set():
            raise RuntimeError("the request was cancelled")
        return eps_fn(x_t, t)

    def run() -> None:
        try:
            ran["x"] = sample(sampler, eps_or_stop, x_T.to(next(model.parameters()).device), ts, model.schedule,
                              generator=g, callback=steps_in.put)
        except BaseException as e:       # re-raised below, in the request's own context
            ran["error"] = e
        finally:
            steps_in.put(None)

    threading.Thread(target=run, name="jdx-denoise", daemon=True).start()
    last, told, every = 0.0, 0.0, max(1, (len(ts) - 1) // MAX_FRAMES)      # the first step shows at once
    try:
        while (step := steps_in.get()) is not None:
            recorded.append(step)
            i = len(recorded)
            now = time.monotonic()
            if i == 1 or i == len(ts) - 1 or now - told > PROGRESS_INTERVAL_S:
                progress((i, len(ts) - 1), desc=f"denoising t = {step.t}")
                told = now
            if (i == 1 or i % every == 0) and now - last > FRAME_INTERVAL_S:
                last = now
                yield (big(step.x_t[0]), big(step.x0_hat[0]), f"step {i}/{len(ts) - 1}: t = {step.t}", gr.skip(),
                       gr.skip(), gr.skip())
    finally:
        stop.set()
    if "error" in ran:
        raise ran["error"]
    x = ran["x"]
    gen = Generation(x, recorded)
    traj = _trajectory(model_name, model, gen.steps, gen.images, logits)
    last_i = len(traj["t"]) - 1
    yield (big(gen.images[0]), big(gen.steps[-1].x0_hat[0]), _caption(traj, last_i), traj,
           gr.update(maximum=last_i, value=last_i, interactive=True), _plot(traj, last_i))


FRAME_AXIS = "frame (t falls to 0)"    # from T, or from t* when the run starts at the image


def _table(traj: dict, i: int):
    """p(y | x_t, t) along the run over the frame index (the scrub slider's axis, so sampling, T → 0, runs left
    to right), with a rule at frame i. A native plot sends ~300 numbers instead of a rendered PNG (~0.15 s of
    matplotlib per run and per scrub)."""
    return native.with_mark(native.class_curves(range(len(traj["t"])), traj["probs"], traj["names"], FRAME_AXIS),
                            FRAME_AXIS, i)


def _plot(traj: dict, i: int):
    """The plot after a run: the table (None for a model without a classifier); its colours and legend follow
    in an update of their own (native.legend). The rule needs no legend entry (the caption names the frame)."""
    if traj["probs"] is None:
        return None
    return native.padded(_table(traj, i), traj["names"])


def _caption(traj: dict, i: int) -> str:
    text = f"**t = {traj['t'][i]}** (frame {i} of {len(traj['t']) - 1})"
    if traj["probs"] is not None:
        k = int(np.argmax(traj["probs"][i]))
        text += f" — classifier: {traj['names'][k]} ({traj['probs'][i][k]:.0%})"
    else:      # the plot beside it stays empty: say why
        text += " — this model has no classifier, so there is no p(y | x_t) to plot (a joint model has one)"
    return text


def scrub(traj: dict | None, i: int, evt: gr.EventData = None):
    """Show stored frame i (x_t, x̂₀, caption) of the last run — no model call."""
    if not traj:
        if evt is not None and evt.target is not None:
            # The slider moved because a failed run emptied it: that run's own error already said what went
            # wrong (a second toast, "run a denoising first", blamed the person for it).
            return gr.skip(), gr.skip(), gr.skip()
        raise gr.Error("Run a denoising first; the slider then scrubs through its steps.")
    i = int(min(max(int(i), 0), len(traj["t"]) - 1))
    return big(_frame(traj["x_t"][i])), big(_frame(traj["x0"][i])), _caption(traj, i)


def mark(traj: dict | None, i: int):
    """The probability plot with stored frame i marked (after a scrub). Only the table: a scrub that also sent
    the colours made the browser draw the plot before its new table arrived, one frame behind."""
    if not traj or traj["probs"] is None:
        return gr.skip()
    return native.padded(_table(traj, int(min(max(int(i), 0), len(traj["t"]) - 1))), traj["names"])


def export_gif(traj: dict | None) -> str:
    """The stored trajectory as an animated GIF (x_t | x̂₀ per frame) in a temporary folder."""
    if not traj:
        raise gr.Error("Run a denoising first, then export it.")
    frames = pair_frames(traj["t"], [_frame(a) for a in traj["x_t"]], [_frame(a) for a in traj["x0"]], scale=8)
    path = Path(tempfile.mkdtemp(prefix="jdx-")) / "trajectory.gif"
    save_gif(frames, path)
    return str(path)


def build(model_box: gr.Dropdown, image: gr.Image, class_names: list[str]) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        start = gr.Radio(["pure noise", "my image, noised to t*"], value="pure noise", label="start from")
        t_star = gr.Slider(1, models.T_of(model_box.value), value=300, step=1, label="t* (image start)", interactive=False,
                           elem_id="denoise-tstar")
        sampler = gr.Radio(["ddim", "ddpm"], value="ddim", label="sampler")
        steps = gr.Slider(5, 200, value=50, step=1, label="steps")
    with gr.Row():
        guide = gr.Dropdown([NO_GUIDANCE] + class_names, value=NO_GUIDANCE, label="class guidance")
        scale = gr.Slider(0, 30, value=8, step=0.5, label="guidance scale s")
        seed = gr.Number(0, precision=0, label="seed")
        run = gr.Button("Denoise", variant="primary", elem_id="denoise-btn")
    with gr.Row():
        x_t = gr.Image(label="x_t", format="png", interactive=False, elem_classes="pixelated", height=240,
                       scale=1, elem_id="denoise-xt")
        x0 = gr.Image(label="x̂₀ (guess of x₀)", format="png", interactive=False,
                      elem_classes="pixelated", height=240, scale=1, elem_id="denoise-x0")
        plot = gr.LinePlot(x=FRAME_AXIS, y="probability", color="class", y_lim=[0, 1], height=300, scale=2,
                           color_map=native.colours(class_names),
                           title="p(y | x_t, t) along the run",
                           tooltip="all", label="classifier along the way",
                           show_label=False, elem_id="denoise-plot")
    caption = gr.Markdown(elem_id="denoise-caption")
    frame = gr.Slider(0, 50, value=0, step=1, label="scrub the trajectory (frame; t falls to the right)",
                      interactive=False, elem_id="denoise-scrub")
    traj = gr.State()
    with gr.Row():
        gif_btn = gr.Button("Export GIF", elem_id="gif-btn")
        gif = gr.File(label="trajectory.gif", elem_id="gif-file", height=90)
    # t* only matters when starting from the image.
    start.change(lambda s: gr.update(interactive=not s.startswith("pure")), start, t_star, api_name=False,
                 show_progress="hidden")
    # The progress bar sits on the plot (empty while sampling), not over the frames streaming in.
    models.follow_T(model_box, t_star)
    outputs = [x_t, x0, caption, traj, frame, plot]
    clear_on_failure(run.click(denoise, [model_box, image, start, t_star, sampler, steps, guide, scale, seed],
                               outputs, api_name="denoise", show_progress_on=[plot],
                               concurrency_limit=DENOISE_CONCURRENCY), outputs) \
        .success(native.legend, plot, plot, queue=False, api_name=False, show_progress="hidden")
    frame.change(scrub, [traj, frame], [x_t, x0, caption], api_name="scrub", show_progress="hidden") \
        .then(mark, [traj, frame], plot, api_name=False, show_progress="hidden")
    gif_btn.click(export_gif, traj, gif, api_name="gif")
    # A new run makes the exported file the previous run's: take it away at the press (it kept its link).
    run.click(None, None, gif, js="() => null", queue=False, api_name=False, show_progress="hidden")
