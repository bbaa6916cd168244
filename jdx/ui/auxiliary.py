"""Auxiliary-variables view (multivariate diffusions, Singhal et al. 2023): where the data value shares its
noise with extra variables. On 2-D data, particles move in the data plane and in the (position, velocity)
phase plane, forward and reverse, for each diffusion side by side; the learned Q and D are drawn. On images,
x_s and its auxiliary channels along both processes; and the bits/dim each diffusion reaches."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from ..mdm.diffusions import S_MIN
from ..mdm.elbo import dequantize_logit, from_logit
from ..mdm.sampling import forward_path, sample
from ..toy import toy_data
from . import models, plots
from .composites import variable_mosaic
from .compute import on_compute_thread
from .errors import clear_on_failure, clear_when, follow

ORDER = ["vpsde", "cld", "alda", "malda", "learned"]
PAPER_MNIST = {"vpsde": 1.089, "cld": 0.920, "learned": 0.960, "malda": 0.507, "alda": 2.061}
N_POINTS, REVERSE_STEPS = 600, 100
BLANK = 0.0           # a sample whose brightest pixel stays below mid-grey (−1 … 1) drew no garment
S_DEFAULT = 0.04      # the forward moons still visible in every diffusion (at 0.3 all were blobs already)
EXPLAIN = """**Diffusions with auxiliary variables.** Each data value z gets K − 1 companions v (think of a
*velocity*); noise enters only through D and is passed around by the rotation Q, so the data value is
noised *smoothly* (CLD: noise hits the velocity, the velocity moves the position). Every such diffusion ends at
the same Gaussian and is trained by one ELBO. Drag **s** to watch the particles: top, the forward process
from the data; bottom, the model's reverse process from noise. The learned diffusion chose its own Q and D."""


@lru_cache(maxsize=4)
def _mdm_metas(folder: str) -> dict[str, dict]:
    """name → JSON of every MDM checkpoint in the folder, read once (not on every request)."""
    return {n: json.loads((Path(folder) / f"{n}.json").read_text()) for n in models.listing(("mdm",), Path(folder))}


def _metas() -> dict[str, dict]:
    return _mdm_metas(str(models.CHECKPOINT_DIR))


def toy_models() -> dict[str, list[str]]:
    """data set → its 2-D MDM checkpoints, in the order of ORDER."""
    out: dict[str, list[tuple[int, str]]] = {}
    for name, meta in _metas().items():
        if "mlp" in meta["config"]:
            d = meta["config"]["diffusion"]["name"]
            out.setdefault(meta["data"]["name"], []).append((ORDER.index(d) if d in ORDER else 99, name))
    return {k: [n for _, n in sorted(v)] for k, v in out.items()}


def image_models() -> list[str]:
    """The image MDMs, the one the view opens on first: CLD, the textbook auxiliary variable (a velocity), whose
    samples are garments since its mixed-score retraining (session 11; before, they were near-blank and the
    view opened on the learned diffusion), then the learned one."""
    names = [n for n, meta in _metas().items() if "unet" in meta["config"]]
    first = {"cld": 0, "learned": 1}
    return sorted(names, key=lambda n: (first.get(_metas()[n]["config"]["diffusion"]["name"], 2), n))


@lru_cache(maxsize=8)
def _trajectories(name: str, seed: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """(forward s grid, forward y_s, reverse s grid, reverse y_s) of one 2-D MDM, computed once."""
    model = models.get(name, on="cpu")
    g = torch.Generator().manual_seed(seed)
    x, _ = toy_data(model.info.data["name"], N_POINTS, seed=seed)
    s_fwd = np.linspace(0, 1, 51)
    fwd = forward_path(model.diffusion, x, s_fwd[1:].tolist(), g)
    _, traj = sample(model, N_POINTS, REVERSE_STEPS, "em", g, keep=REVERSE_STEPS)
    return s_fwd, [y.numpy() for y in fwd], np.array([s for s, _ in traj]), [y.numpy() for _, y in traj]


@lru_cache(maxsize=8)
def _gaussian_nll(data: str, n: int = 100_000) -> float:
    """Nats per point of the best Gaussian for a 2-D toy set, ½ log((2πe)² det Σ): the score a diffusion that
    learned only the data's mean and covariance would reach."""
    x, _ = toy_data(data, n, seed=5)
    return float(0.5 * torch.logdet(2 * np.pi * np.e * torch.cov(x.T.double())))


def _nearest(grid: np.ndarray, s: float) -> int:
    return int(np.abs(grid - s).argmin())


@on_compute_thread
def aux_particles(data: str = "moons", s: float = S_DEFAULT, seed: int = 0):
    """→ (phase-plane figure, Q/D figure, summary) for every 2-D MDM of this data set at time s."""
    names = toy_models().get(data)
    if not names:
        raise gr.Error(f"no 2-D multivariate diffusion for {data!r}; train one with "
                       f"`jdx train toy-mdm --data {data} --diffusion cld`")
    s = float(min(max(s, 0.0), 1.0))
    columns, mats, lines = [], [], []
    for name in names:
        model = models.get(name, on="cpu")
        s_fwd, fwd, s_rev, rev = _trajectories(name, int(seed))
        d = model.diffusion
        label = f"{d.config.name} (K={d.K})"
        columns.append((label, fwd[_nearest(s_fwd, s)], rev[_nearest(s_rev, max(s, S_MIN))]))
        if d.learned:
            mats += [("learned Q", d.Q().detach().numpy()), ("learned D", d.D().detach().numpy())]
        nll = model.info.metrics.get("test_nll_nats")
        lines.append(f"{label}: {nll:.2f} nats" if nll is not None else label)
    if not mats:
        cld = next((d for d in (models.get(n, on="cpu").diffusion for n in names) if d.config.name == "cld"), None)
        if cld is not None:
            mats = [("CLD Q", cld.Q().numpy()), ("CLD D", cld.D().numpy())]
    mat_fig = plots.matrices(mats, "Q (skew: rotates) and D (PSD: where noise enters)") if mats else None
    summary = (f"Held-out −ELBO per point (upper bound on the NLL, lower is better; a Gaussian fitted to the data "
               f"scores {_gaussian_nll(data):.2f}): " + "; ".join(lines) + ". At s = 0 compare each reverse panel with "
               "the data above it: a model near the Gaussian's score ends in a blob, not in the data's shape.")
    return plots.phase_panels(columns, s), mat_fig, summary


@lru_cache(maxsize=16)
def _reverse(mdm_name: str, seed: int) -> tuple[list[tuple[float, np.ndarray]], float, float]:
    """(frames (s, variables (K, H, W)), final pixel min, max) of one sample from noise. It depends on the model
    and the seed only, never on the picked image, so a new picture at the same seed reuses it: the 100 reverse
    steps are nearly all of the view's time (1.4 of 1.5 s on a 2-core CPU), the forward path of the image ~10 ms."""
    model = models.get(mdm_name)
    g = torch.Generator().manual_seed(seed)          # its own stream: the same sample with or without an image
    y, traj = sample(model, 1, REVERSE_STEPS, "em", g, keep=7, device=next(model.parameters()).device)
    pix = from_logit(y[:, 0]).cpu()
    return [(s, v[0, :, 0].numpy()) for s, v in traj], float(pix.min()), float(pix.max())


@on_compute_thread
def aux_image(image, mdm_name: str = "", seed: int = 0):
    """→ (forward figure or None, reverse figure, summary): the variables of an image MDM along the forward
    process of your image and along a reverse sample (computed once per model and seed)."""
    names = image_models()
    if not names:
        raise gr.Error("no image multivariate diffusion checkpoint; train one with `jdx train mdm`")
    mdm_name = mdm_name or names[0]
    if mdm_name not in names:
        raise gr.Error(f"{mdm_name!r} is not an image multivariate diffusion; pick one of {', '.join(names)}")
    model = models.get(mdm_name)
    s_show = [0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0]
    fwd_fig = None
    if image is not None:
        g = torch.Generator().manual_seed(int(seed))
        x0 = models.image_input(model, image).cpu()
        x, _ = dequantize_logit(x0, g)
        path = forward_path(model.diffusion, x, s_show[1:], g)
        fwd_fig = variable_mosaic([(s, y[0, :, 0].cpu().numpy()) for s, y in zip(s_show, path)],
                                      f"forward: your image (logit space) and its auxiliaries, {model.info.name}")
    else:
        gr.Warning("No image: showing the reverse process only.")
    frames, lo, hi = _reverse(mdm_name, int(seed))
    rev_fig = variable_mosaic(frames, f"reverse: a sample from noise ({REVERSE_STEPS} Euler–Maruyama steps)")
    bpd = model.info.metrics.get("test_bpd")
    d = model.diffusion
    summary = (f"**{mdm_name}** — {d.config.name}, K = {d.K} variable{'s' if d.K > 1 else ''} per pixel"
               + (f"; test bits/dim {bpd:.3f}" if bpd is not None else "")
               + f". Final sample pixel range {lo:.2f} … {hi:.2f}.")
    if hi < BLANK:
        summary += (f" ⚠ **This sample is almost all background** (its brightest pixel is {hi:.2f} on a scale from −1 "
                    f"to 1): this {d.config.name} model does not yet draw garments in {REVERSE_STEPS} steps; it is "
                    "undertrained (README, \"Multivariate diffusions\"). The learned diffusion's samples are garments.")
    return fwd_fig, rev_fig, summary


def bpd_table() -> str:
    """Markdown: the shipped image MDMs' test bits/dim beside the paper's MNIST numbers."""
    rows = []
    for name in image_models():
        meta = _metas()[name]
        d, m, t = meta["config"]["diffusion"], meta.get("metrics", {}), meta.get("training", {})
        bpd = f"{m['test_bpd']:.3f} ± {m.get('test_bpd_se', 0):.3f}" if "test_bpd" in m else "—"
        rows.append(f"| {name} | {d['name']} | {d['K']} | {bpd} | {t.get('steps', '?')} | "
                    f"{t.get('wall_time_s', 0) / 60:.0f} min | {PAPER_MNIST.get(d['name'], '—')} |")
    if not rows:
        return "*No image multivariate diffusion checkpoints.*"
    head = ("| checkpoint | diffusion | K | test bits/dim (ours, Fashion-MNIST) | steps | training time | "
            "paper, MNIST |\n|---|---|---|---|---|---|---|\n")
    return head + "\n".join(rows)


def build(image: gr.Image) -> None:
    gr.Markdown(EXPLAIN)
    toys = toy_models()
    if toys:
        first = next(iter(toys))
        with gr.Row():
            one = len(toys) == 1      # a picker with one choice looked broken: say why there is no other
            data = gr.Dropdown(list(toys), value=first, label="2-D data set", elem_id="aux-data", interactive=not one,
                               info=f"only the {first} ship with 2-D multivariate diffusions" if one else None)
            s = gr.Slider(0, 1, value=S_DEFAULT, step=0.02, label="time s", elem_id="aux-s")
            seed = gr.Number(0, precision=0, label="seed")
        summary = gr.Markdown(elem_id="aux-summary")
        phase = gr.Plot(label="particles", show_label=False)
        mats = gr.Plot(label="Q and D", show_label=False)
        go = gr.Button("Move the particles", variant="primary", elem_id="aux-btn")
        clear_on_failure(follow([go.click, s.release, data.change], aux_particles, [data, s, seed], [phase, mats, summary],
                                api_name="aux_particles"), [phase, mats, summary])
    else:
        gr.Markdown("*No 2-D multivariate diffusion checkpoints (`jdx train toy-mdm`).*")
    images = image_models()
    gr.Markdown("### On images\nThe picked image (left) noised forward, and a sample drawn in reverse: every "
                "pixel carries its auxiliaries as extra channels.")
    with gr.Row():
        mdm = gr.Dropdown(images, value=images[0] if images else None, label="image MDM", elem_id="aux-mdm")
        img_seed = gr.Number(0, precision=0, label="seed")
    img_summary = gr.Markdown(elem_id="aux-image-summary")
    fwd = gr.Image(label="forward", show_label=False, format="png", interactive=False, elem_id="aux-forward")
    rev = gr.Image(label="reverse", show_label=False, format="png", interactive=False, elem_id="aux-reverse")
    run = gr.Button("Show the variables", elem_id="aux-image-btn")
    clear_when([image.change, mdm.change], [fwd, rev, img_summary], "**Show the variables**")
    clear_on_failure(run.click(aux_image, [image, mdm, img_seed], [fwd, rev, img_summary], api_name="aux_image"),
                     [fwd, rev, img_summary])
    gr.Markdown("### Bits/dim\nSame U-Net, same steps and batch for every diffusion (README: how these were "
                "measured, and why they sit above the paper's MNIST figures).\n\n" + bpd_table(),
                elem_id="aux-bpd")
