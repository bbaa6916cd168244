"""Learn view, for teaching: the forward process on your image, the ᾱ_t and SNR curves of the linear and
cosine schedules, and a 2-D playground where every part of a joint diffusion model can be seen at once."""
from __future__ import annotations

from functools import lru_cache

import gradio as gr
import numpy as np
import torch

from ..counterfactual import counterfactual
from ..diffusion import Schedule, ScheduleConfig
from ..generate import generate
from ..guidance import one_hot
from ..toy import TOY_SETS, toy_data
from ..viz import grid
from . import compute
from .compute import on_compute_thread
from . import models, plots
from .errors import clear_on_failure, follow
from .pictures import big

FORWARD = """**The forward process** destroys an image on purpose: x_t = √ᾱ_t · x₀ + √(1−ᾱ_t) · ε with
ε ~ N(0, I). ᾱ_t, the share of signal kept, falls from 1 to almost 0; the **schedule** decides how fast.
The *linear* schedule (DDPM) wipes out most of the image by the middle; the *cosine* schedule keeps it
longer. A diffusion model learns to undo one small step at a time."""
PLAYGROUND = """**A 2-D playground.** Each point is a data sample with a class (colour). A tiny joint model
(an MLP) learned both to denoise points and to classify noisy points. *Score field*: the arrows are the
learned score ∇ log p_t(x) at noise level t — at large t they all point to the middle, at small t onto the
data. Shaded regions: what the classifier says at that t. *Reverse process*: particles start as pure noise
and follow the score onto the data. *Counterfactual*: one point is noised to t\\* and walked back with the
classifier's guidance toward another class — it ends in that class's region. *Noise-level classifier*: a
second network that only learned to tell noise levels apart (a CDM, no t input); the gradient of its log-odds
gives the same field as the denoiser (Thm 3.1), and its outputs give the exact density (shading, Thm 3.2)."""


@on_compute_thread
def forward(model_name: str, image, t: int = 100, seed: int = 0):
    """→ (x_t, a strip of x_t at 9 levels, ᾱ_t / SNR curves with t marked)."""
    model = models.get(model_name)
    x = models.image_input(model, image)
    T = model.schedule.T
    t = int(min(max(int(t), 0), T))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed))).to(x.device)
    ts = np.linspace(0, T, 9).round().astype(int)
    strip = torch.cat([model.schedule.noise_to(x, int(s), eps) for s in ts]).cpu()
    curves = {kind + (" (this model)" if kind == model.schedule.config.kind else ""): _curve(kind, T)
              for kind in ("linear", "cosine")}
    x_t = model.schedule.noise_to(x, t, eps).cpu()
    return big(x_t[0]), grid(strip, nrow=9, scale=3), plots.schedules(curves, t, T)


@lru_cache(maxsize=8)
def _curve(kind: str, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(ᾱ_t, SNR_t) for t = 0 … T — once per schedule, not on every move of the t slider."""
    ab = Schedule(ScheduleConfig(kind, T)).alpha_bar.numpy().astype(np.float64)
    return ab, ab / np.maximum(1 - ab, 1e-12)


# ---------- the 2-D playground -------------------------------------------------------------------------

def _toy(name: str):
    if name not in TOY_SETS:
        raise gr.Error(f"unknown toy data set {name!r}; choose from {', '.join(TOY_SETS)}")
    return models.get(f"toy-{name}", on="cpu")      # a 2-D MLP: the CPU beats any kernel launch


@lru_cache(maxsize=len(TOY_SETS))
def _scatter(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The data points every playground figure draws (one fixed draw per data set)."""
    x, y = toy_data(name, 1500, seed=1)
    return x.numpy(), y.numpy()


def _grid(n: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    g = np.linspace(-1.2, 1.2, n)
    gx, gy = np.meshgrid(g, g)
    return gx, gy, torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)).float()


@torch.no_grad()
def _regions(model, t: int):
    gx, gy, pts = _grid(90)
    return gx, gy, model.classify(pts, t).argmax(1).numpy().reshape(gx.shape)


@on_compute_thread
def toy_field(name: str = "moons", t: int = 10):
    """The learned score field at t over the data, with the classifier's regions at t."""
    model = _toy(name)
    t = int(min(max(int(t), 1), model.schedule.T))
    return plots.toy_scene(*_scatter(name), model.info.class_names,
                           f"denoiser's score field and classifier regions\nat t = {t} of {model.schedule.T}",
                           regions=_regions(model, t), arrows=_arrows(model, t))


def _toy_cdm(name: str):
    if name not in TOY_SETS:
        raise gr.Error(f"unknown toy data set {name!r}; choose from {', '.join(TOY_SETS)}")
    return models.get(f"toy-{name}-cdm", on="cpu")


def _arrows(model, t: int) -> tuple[np.ndarray, ...]:
    """The score at t on a 21×21 grid, as arrows ∝ the step a reverse update takes (σ_t² · score), so that
    fields at all t fit the plot and the two models' fields are drawn to one scale."""
    gx, gy, pts = _grid(21)
    step = model.score(pts, t).numpy() * float(1 - model.schedule.alpha_bar[t]) * 0.5
    return gx, gy, step[:, 0].reshape(gx.shape), step[:, 1].reshape(gx.shape)


@on_compute_thread
def toy_cdm_field(name: str = "moons", t: int = 10):
    """The noise-level classifier's field −(∇ₓF + x) at t (Thm 3.1) over its one-pass log-density (Thm 3.2),
    and how closely it matches the denoiser's score field (mean cosine over the grid)."""
    cdm, joint = _toy_cdm(name), _toy(name)
    t = int(min(max(int(t), 1), cdm.schedule.T))
    arrows = _arrows(cdm, t)
    ref = _arrows(joint, t) if joint.schedule.T == cdm.schedule.T else None
    title = f"noise-level classifier: −(∇F + x) at t = {t}"
    if ref is not None:
        a = np.stack([arrows[2].ravel(), arrows[3].ravel()], 1)
        b = np.stack([ref[2].ravel(), ref[3].ravel()], 1)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        title += f"\nagreement with the denoiser's field: mean cos = {cos.mean():.2f}"
    gx, gy, pts = _grid(90)
    with torch.no_grad():
        log_p = cdm.log_likelihood(pts).numpy().reshape(gx.shape)
    return plots.toy_scene(*_scatter(name), cdm.info.class_names, title, arrows=arrows, density=(gx, gy, log_p))


def toy_reverse(name: str = "moons", n: int = 400, sampler: str = "ddpm", seed: int = 0, frames: int = 6):
    """Generator: figures of n particles moving from noise onto the data (reverse process)."""
    # 6 frames + the samples: each frame is a matplotlib figure the page encodes (~0.15 s); 11 took > 2 s.
    model = _toy(name)
    n = int(min(max(int(n), 10), 5000))
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(int(seed)))
    gen = compute.run(generate, model, n, x_T=x_T, sampler=sampler, steps=model.schedule.T, seed=int(seed),
                      record=True, device="cpu")
    idx = np.linspace(0, len(gen.steps) - 1, int(frames)).round().astype(int)
    for i in idx:
        st = gen.steps[i]
        yield plots.toy_scene(*_scatter(name), model.info.class_names, f"reverse process: t = {st.t}",
                              particles=st.x_t.numpy())
    yield plots.toy_scene(*_scatter(name), model.info.class_names, "reverse process: t = 0 (samples)",
                          particles=gen.images.numpy())


def toy_runner_up(name: str, x0: float = -0.5, y0: float = 0.3) -> str:
    """The default target for a start point: the class the classifier ranks second there (the last class was
    the start point's own class on the spirals, so the walk went nowhere)."""
    model = _toy(name)
    with torch.no_grad():
        p = model.predict(torch.tensor([[float(x0), float(y0)]]))[0]
    return model.info.class_names[int(p.argsort(descending=True)[1])]


def toy_samples(name: str = "moons"):
    """The reverse process's end (its samples), what the pane shows until "Run the reverse process" plays it
    (an empty pane on a first visit read as broken)."""
    return next(toy_reverse(name, frames=0))          # no intermediate frames: only the samples are drawn


@on_compute_thread
def toy_counterfactual(name: str = "moons", x0: float = -0.5, y0: float = 0.3, target: str = "",
                       t_star: int = 40, scale: float = 3.0, seed: int = 0):
    """One point walked from its class to `target` by guided denoising from t*: its path, over the regions."""
    model = _toy(name)
    names = model.info.class_names
    k = names.index(target) if target in names else len(names) - 1
    point = torch.tensor([[float(x0), float(y0)]])
    cf = counterfactual(model, point, one_hot(k, len(names)), t_star=int(min(max(int(t_star), 1), model.schedule.T)),
                        scale=float(scale), steps=int(t_star), seed=int(seed), record=True)
    path = np.concatenate([point.numpy(), np.stack([s.x_next[0].numpy() for s in cf.steps])])
    before, after = names[int(cf.probs_before.argmax())], names[int(cf.probs_after.argmax())]
    return plots.toy_scene(*_scatter(name), names, f"counterfactual: {before} → {after}\n(target: {names[k]})",
                           regions=_regions(model, 0), path=path)


def build(model_box: gr.Dropdown, image: gr.Image) -> None:
    gr.Markdown(FORWARD)
    with gr.Row():
        t = gr.Slider(0, models.T_of(model_box.value), value=100, step=1, label="t", elem_id="learn-t")
        seed = gr.Number(0, precision=0, label="noise seed")
    with gr.Row():
        x_t = gr.Image(label="x_t", format="png", interactive=False, elem_classes="pixelated", height=220,
                       elem_id="learn-forward")
        curves = gr.Plot(label="schedules", show_label=False, scale=2)
    strip = gr.Image(label="x_t at t = 0, T/8, …, T", format="png", interactive=False, elem_classes="pixelated")
    clear_on_failure(follow([t.change, image.change, seed.change], models.if_image(forward, 3, warn=False),
                            [model_box, image, t, seed], [x_t, strip, curves], api_name="forward",
                            show_progress="hidden"),
                     [x_t, strip, curves])

    gr.Markdown(PLAYGROUND)
    first = list(TOY_SETS)[0]
    with gr.Row():
        data = gr.Radio(list(TOY_SETS), value=first, label="toy data set")
        toy_t = gr.Slider(1, 100, value=10, step=1, label="t for the score field")
    with gr.Row():
        field = gr.Plot(toy_field(first), label="score field", show_label=False)
        cdm_field = gr.Plot(toy_cdm_field(first), label="noise-level classifier field", show_label=False,
                            elem_id="toy-cdm-field")
    with gr.Row():
        moving = gr.Plot(toy_samples(first), label="reverse process", show_label=False, elem_id="toy-moving")
        path = gr.Plot(toy_counterfactual(first, target=TOY_SETS[first][1][-1]), label="counterfactual path",
                       show_label=False)
    with gr.Row():
        reverse_btn = gr.Button("Run the reverse process", elem_id="toy-reverse-btn")
        px = gr.Number(-0.5, label="start x")
        py = gr.Number(0.3, label="start y")
        target = gr.Dropdown(TOY_SETS[first][1], value=TOY_SETS[first][1][-1], label="target class")
        toy_t_star = gr.Slider(1, 100, value=40, step=1, label="t*")
        toy_scale = gr.Slider(0, 10, value=3, step=0.5, label="guidance s")
        cf_btn = gr.Button("Walk the point", elem_id="toy-cf-btn")
    follow([data.change, toy_t.release], toy_field, [data, toy_t], field, api_name="toy_field")
    follow([data.change, toy_t.release], toy_cdm_field, [data, toy_t], cdm_field, api_name="toy_cdm_field")
    # A new data set redraws every pane of the playground: the reverse process and the counterfactual path
    # kept showing the moons beside a spiral field.
    classes = follow(data.change, lambda d, x, y: gr.update(choices=TOY_SETS[d][1], value=toy_runner_up(d, x, y)),
                     [data, px, py], target, api_name="toy_classes")
    classes.then(toy_counterfactual, [data, px, py, target, toy_t_star, toy_scale], path, api_name=False) \
        .then(toy_samples, data, moving, api_name=False, show_progress="hidden")
    clear_on_failure(reverse_btn.click(toy_reverse, data, moving, api_name="toy_reverse"), [moving])
    clear_on_failure(cf_btn.click(toy_counterfactual, [data, px, py, target, toy_t_star, toy_scale], path,
                                  api_name="toy_counterfactual"), [path])
