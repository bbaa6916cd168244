"""A lesson a teacher can project: seven short steps from the forward process to the likelihood, each one
live control on the page's image, one sentence of what to look for and one question for the class. Written
for students who know what a Gaussian is and nothing about diffusion. Presenter layout: one step, one
picture at a time, large type."""
from __future__ import annotations

from typing import NamedTuple

import gradio as gr
import numpy as np
import torch

from ..counterfactual import DEFAULT
from ..generate import generate
from ..samplers import ddim
from ..viz import grid
from . import counterfactual as counterfactual_view, models, noise_level as noise_level_view
from .compute import on_compute_thread
from .errors import clear_on_failure, follow

CSS = """
#lesson .prose, #lesson .prose p, #lesson label span { font-size: 1.35rem !important; line-height: 1.45; }
#lesson .prose h2 { font-size: 2rem !important; }
#lesson .lesson-ask { border-left: 6px solid var(--color-accent); padding-left: 0.8em; }
#lesson .matplotlib img { width: 100% !important; max-width: 960px; height: auto !important; }
"""


class Step(NamedTuple):
    title: str
    what: str          # what the picture shows (one or two sentences)
    look: str          # one sentence: what to look for
    ask: str           # one question for the class


STEPS = [
    Step("1 · Noise destroys the image",
         "Diffusion starts by ruining pictures on purpose: x_t = √ᾱ_t · x₀ + √(1−ᾱ_t) · ε, a weighted mix of the "
         "image and Gaussian noise ε ~ N(0, I). As t grows the image's share √ᾱ_t shrinks to almost 0.",
         "Drag t: left is your image, right the same image at noise level t.",
         "At which t can you no longer tell what the garment is? Would the network still know?"),
    Step("2 · What the network predicts",
         "The network sees only the noisy x_t and t, and guesses the noise ε̂ that was added. Subtracting it gives "
         "its guess of the clean image: x̂₀ = (x_t − √(1−ᾱ_t) · ε̂) / √ᾱ_t.",
         "Left to right: x_t, the predicted noise ε̂, the guess x̂₀ — watch x̂₀ turn blurry and 'average' as t grows.",
         "Why is the guess blurry at large t rather than wrong in one sharp way?"),
    Step("3 · One step back",
         "Generation undoes the noise a little at a time. One DDIM step from t to t − Δ keeps the guess x̂₀ and "
         "puts back a smaller amount of the predicted noise: with t′ = t − Δ, x_t′ = √ᾱ_t′ · x̂₀ + √(1−ᾱ_t′) · ε̂.",
         "Left to right: x_t, x̂₀, and x_t′ one step later: a bigger Δ jumps further toward x̂₀ in one step.",
         "If one big step lands on x̂₀, why do samplers take 50 small ones?"),
    Step("4 · Guidance: steering toward a class",
         "The same network also classifies noisy images. Adding the gradient of log p(class | x_t) to the "
         "denoising direction at every step pushes the sample toward the class you pick (10 steps from t = 300, "
         "strength s = 8).",
         "Left to right: x_t, where 10 unguided steps end, where 10 guided steps end.",
         "Which classes are easy to steer toward from this image, and which are not? Why?"),
    Step("5 · A counterfactual",
         "Noise your image to t*, then walk back with guidance toward the class the model thought second most "
         "likely: the smallest edit that changes its mind. t* says how much may change.",
         "Drag t*: it sets how much of the picture may change, not how much will — the edit kept is the "
         "smallest that convinces the model, so the change can shrink again at a large t*; the page warns when "
         "an edit fools the model without convincing a second classifier.",
         "Is the edit a change a person would make, or a trick that only fools the model?"),
    Step("6 · A classifier of noise levels",
         "A second network (a CDM) only learned to tell how noisy an image is: p(t | x_t). Its gradient turns out "
         "to be a denoiser too.",
         "The shaded curve is the CDM's belief about t, the dashed line the true t: drag t and see whether it follows.",
         "Which noise levels are hard to tell apart, and why would that be?"),
    Step("7 · How likely is this image?",
         "Adding up what the noise-level classifier knows over all t gives the image's likelihood, in bits per "
         "dimension (bpd): fewer bits means the model compresses the image better. That is not the same as "
         "\"looks like clothes\": simple pictures (flat shapes, a drawing) get few bits under any model.",
         "Load different garments (or upload your own): the red line is the image among the test images' "
         "bits/dim; the sentence gives the number.",
         "Would a photo of a cat get more or fewer bits than a shirt? Why?"),
]

T_GUIDE, S_GUIDE = 300, 8.0


def _noised(model, x, t: int, seed: int = 0) -> torch.Tensor:
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)
    return model.schedule.noise_to(x, t, eps) if t > 0 else x


def _clip(t, model) -> int:
    return int(min(max(int(t), 0), model.schedule.T))


@on_compute_thread
def lesson_forward(model_name: str, image, t: int = 200):
    """Step 1: the image and the image noised to t, side by side."""
    model = models.get(model_name)
    x = models.image_input(model, image)
    return grid(torch.cat([x, _noised(model, x, _clip(t, model))]).cpu(), nrow=2, scale=8)


@on_compute_thread
def lesson_prediction(model_name: str, image, t: int = 200):
    """Step 2: x_t, the predicted noise ε̂ and the clean-image guess x̂₀."""
    model = models.get(model_name)
    x = models.image_input(model, image)
    t = max(1, _clip(t, model))
    x_t = _noised(model, x, t)
    with torch.no_grad():
        eps_hat = model.eps(x_t, t)
    x0_hat = model.schedule.x0_from_eps(x_t, t, eps_hat).clamp(-1, 1)
    return grid(torch.cat([x_t, (eps_hat / 3).clamp(-1, 1), x0_hat]).cpu(), nrow=3, scale=8)


@on_compute_thread
def lesson_step(model_name: str, image, delta: int = 100, t: int = 300):
    """Step 3: one deterministic DDIM step from t to t − Δ."""
    model = models.get(model_name)
    x = models.image_input(model, image)
    t = max(1, _clip(t, model))
    s = max(0, t - int(delta))
    x_t = _noised(model, x, t)
    seen = []                                     # the sampler's own step: x̂₀ comes with it
    x_s = ddim(model.eps, x_t, [t, s], model.schedule, clip=False, callback=seen.append)
    return grid(torch.cat([x_t, seen[0].x0_hat.clamp(-1, 1), x_s.clamp(-1, 1)]).cpu(), nrow=3, scale=8)


def guidance_verdict(names: list[str], k: int, p, q=None) -> str:
    """Step 4's sentence on the guided result: p, the steering classifier's probabilities; q, a separately trained
    classifier's (None: there is none). "It steered the model, not the picture" only when the steering classifier
    was convinced: when neither calls it class k, the pull was too weak for this picture (a walkthrough met the
    warning beside a 19 % target)."""
    top = int(p.argmax())
    said = f"The classifier that steered it, on the guided result: **{names[k]}** {float(p[k]):.0%}"
    said += "." if top == k else f" — guidance did not get there: it still says **{names[top]}** {float(p[top]):.0%}."
    if q is not None:
        j = int(q.argmax())
        said += (f" A separately trained classifier: **{names[j]}** {float(q[j]):.0%}"
                 + (" — it agrees." if j == k else f" — it does not see {names[k]} either." if top != k else
                    " — ⚠ it disagrees: this steered the model, not the picture."))
    return said


@on_compute_thread
def lesson_guidance(model_name: str, image, target: str = ""):
    """Step 4: 10 DDIM steps from x_300, without and with guidance toward one class."""
    model = models.require_classifier(models.get(model_name))
    names = model.info.class_names
    x = models.image_input(model, image)
    picked = bool(target)
    if not picked:   # the step opens on the picture's runner-up class: a fixed default (Bag) showed nothing on a bag
        target = names[int(model.predict(x)[0].argsort(descending=True)[1])]
    k = models.class_index(model, target)
    t = max(1, min(T_GUIDE, model.schedule.T))
    x_t = _noised(model, x, t)
    w = torch.zeros(len(names))
    w[k] = 1
    x0 = [generate(model, 1, weights=w if scale else None, scale=scale, steps=10, x_T=x_t, t_start=t).images
          for scale in (0.0, S_GUIDE)]                   # 10 DDIM steps from the same x_t, without and with guidance
    judge = counterfactual_view.second_opinion(model)
    # the steering classifier always agrees with itself when it got there; ask one that did not steer
    q = None if judge is None else judge.predict(x0[1].to(next(judge.parameters()).device))[0]
    said = ("" if picked else f"No class picked: steering toward **{target}**, the classifier's second choice for "
            "this picture. ") + guidance_verdict(names, k, model.predict(x0[1])[0], q)
    return grid(torch.cat([x_t, *x0]).cpu(), nrow=3, scale=8), said


def lesson_counterfactual(model_name: str, image, t_star: int = 250):
    """Step 5: a counterfactual toward the runner-up class (the Counterfactual view's own handler)."""
    from . import compute
    model = compute.run(lambda: models.require_classifier(models.get(model_name)))
    x = models.image_input(model, image)
    probs = compute.run(lambda: model.predict(x)[0].cpu().numpy())
    w = np.zeros(len(probs))
    w[int(np.argsort(probs)[-2])] = 1
    # the app's default pull: at s = 100 the keep-close term won at every t* and no garment ever changed
    (before, after), _, _, _, summary = counterfactual_view.counterfactual(model_name, image, int(t_star),
                                                                           DEFAULT.scale, 0, *w.tolist())
    pair = np.concatenate([np.asarray(before.convert("RGB")), np.full((before.height, 8, 3), 40, np.uint8),
                           np.asarray(after.convert("RGB"))], axis=1)
    return pair, "**Left:** your picture; **right:** the edit.\n\n" + summary


@on_compute_thread
def lesson_noise_level(model_name: str, image, t: int = 200):
    """Step 6: the CDM's p(t | x_t) and the sentence on it (the Noise-level view's; the likelihood is step 7's)."""
    cdm = noise_level_view._pick_cdm("fmnist-cdm")
    *_, level_fig, _, said = noise_level_view.levels(cdm, models.image_input(cdm, image), model_name, int(t))
    return level_fig, said


@on_compute_thread
def lesson_likelihood(model_name: str, image):
    """Step 7: bits per dimension of the page's image among the test images' (the Noise-level view's)."""
    cdm = noise_level_view._pick_cdm("fmnist-cdm")
    return noise_level_view.likelihood(cdm, models.image_input(cdm, image))


def example_label(file_name: str, class_names: list[str]) -> str:
    """"7-sneaker-2.png" → "Sneaker 3": the class and the example's number (the picker listed raw file names)."""
    parts = file_name.rsplit(".", 1)[0].split("-")
    if len(parts) >= 3 and parts[0].isdigit() and parts[-1].isdigit() and int(parts[0]) < len(class_names):
        return f"{class_names[int(parts[0])]} {int(parts[-1]) + 1}"
    return file_name


def example_path(example: str) -> str:
    """Step 7's picker puts an example into the page's image, so every step and the left panel show the same
    picture (a picker of its own gave the likelihood of one image beside another)."""
    from .layout import example_paths
    paths = {p.rsplit("/", 1)[-1]: p for p in example_paths()}
    if example not in paths:
        raise gr.Error(f"pick an example: {', '.join(paths)}")
    return paths[example]


TAB_NAMES = ("1 · Noise", "2 · Prediction", "3 · One step", "4 · Guidance", "5 · Counterfactual",
             "6 · Noise level", "7 · Likelihood")      # short: all seven fit in one row at 1280 px (no "⋯" menu hiding steps 5–7)


def build(model_box: gr.Dropdown, image: gr.Image, class_names: list[str], examples: list[str]) -> None:
    """The seven steps as presenter tabs; every control recomputes on release, and opening a step draws its
    picture with the controls as they are (a projected step never starts on an empty frame)."""
    names = [e.rsplit("/", 1)[-1] for e in examples]
    wired = []
    with gr.Column(elem_id="lesson"):
        gr.Markdown("Seven steps: pick an image on the left, then go through the tabs.")
        shown = gr.State(0)           # the step on screen: a new picture redraws it (and only it)
        with gr.Tabs():
            for k, step in enumerate(STEPS):
                with gr.Tab(TAB_NAMES[k], id=f"lesson-{k + 1}") as tab:
                    gr.Markdown(f"## {step.title}\n{step.what}")
                    fn, inputs, outputs = _wire(k, model_box, image, class_names, names)
                    gr.Markdown(f"**Look for:** {step.look}")
                    gr.Markdown(f"**Ask the class:** {step.ask}", elem_classes="lesson-ask")
                tab.select(lambda k=k: k, None, shown, queue=False, api_name=False, show_progress="hidden") \
                    .then(fn, inputs, outputs, api_name=False)
                wired.append((fn, inputs, outputs))
    _redraw_on_new_image(image, shown, wired)


def _redraw_on_new_image(image: gr.Image, shown: gr.State, wired: list) -> None:
    """One listener for a new picture: it redraws the step on screen and leaves the others (they redraw when
    opened), so the open step never describes a picture other than the one beside it (step 2 kept a dress
    next to a bag) and a new picture does not cost six hidden computations."""
    controls = list({id(c): c for _, inputs, _ in wired for c in inputs}.values())
    outputs = [c for _, _, outs in wired for c in outs]

    def redraw(evt: gr.EventData, k: int, *values):
        env = dict(zip(map(id, controls), values))
        out: list = [gr.skip()] * len(outputs)
        fn, inputs, outs = wired[int(k)]
        got = fn(evt, *[env[id(c)] for c in inputs])      # the event: an automatic trigger stays quiet (if_image)
        start = sum(len(o) for _, _, o in wired[:int(k)])
        out[start:start + len(outs)] = got if isinstance(got, (tuple, list)) else [got]
        return out
    follow(image.change, redraw, [shown] + controls, outputs, api_name=False, show_progress="hidden")


def _wire(k: int, model_box, image, class_names, examples):
    """Step k's control and picture, wired; → (handler, inputs, outputs) to draw it as the step opens."""
    picture = dict(format="png", interactive=False, elem_classes="pixelated", show_label=False, height=300)
    if k in (0, 1):
        t = gr.Slider(0 if k == 0 else 10, models.T_of(model_box.value), value=200, step=10, label="noise level t")
        out = gr.Image(**picture)
        step = lesson_forward if k == 0 else lesson_prediction
        fn, inputs, outputs = models.if_image(step, 1), [model_box, image, t], [out]
        clear_on_failure(t.release(fn, inputs, outputs, api_name=step.__name__, trigger_mode="always_last"), outputs)
    elif k == 2:
        d = gr.Slider(10, 300, value=100, step=10, label="step size Δ (from t = 300)")
        out = gr.Image(**picture)
        fn, inputs, outputs = models.if_image(lesson_step, 1), [model_box, image, d], [out]
        clear_on_failure(d.release(fn, inputs, outputs, api_name="lesson_step", trigger_mode="always_last"), outputs)
    elif k == 3:
        target = gr.Radio(class_names, value=None, label="steer toward (none picked: the picture's second choice)")
        out, said = gr.Image(**picture), gr.Markdown()
        fn, inputs, outputs = models.if_image(lesson_guidance, 2), [model_box, image, target], [out, said]
        clear_on_failure(target.change(fn, inputs, outputs, api_name="lesson_guidance"), outputs)
    elif k == 4:
        T = models.T_of(model_box.value)
        t_star = gr.Slider(min(50, T // 2), T, value=250, step=25, label="how much may change: t*")
        out, said = gr.Image(**picture), gr.Markdown()
        fn, inputs, outputs = models.if_image(lesson_counterfactual, 2), [model_box, image, t_star], [out, said]
        clear_on_failure(t_star.release(fn, inputs, outputs, api_name="lesson_counterfactual", trigger_mode="always_last"), outputs)
    elif k == 5:
        t = gr.Slider(0, models.T_of(model_box.value), value=200, step=10, label="true noise level t")
        fig, said = gr.Plot(show_label=False), gr.Markdown()
        fn, inputs, outputs = models.if_image(lesson_noise_level, 2), [model_box, image, t], [fig, said]
        clear_on_failure(t.release(fn, inputs, outputs, api_name="lesson_noise_level", trigger_mode="always_last"), outputs)
    else:
        # a drop-down, not 30 radio buttons: in the lesson's large type those filled the projected screen
        pick = gr.Dropdown([(example_label(e, class_names), e) for e in examples], value=None,
                           label="load an example garment into the page's image")
        fig, said = gr.Plot(show_label=False), gr.Markdown()
        fn, inputs, outputs = models.if_image(lesson_likelihood, 2), [model_box, image], [fig, said]
        pick.input(example_path, pick, image, api_name=False)      # the new picture redraws this step
    return fn, inputs, outputs
