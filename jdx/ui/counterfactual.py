"""Counterfactual view: drag one slider per class to set the target mixture; the image is edited toward it
with the shared classifier's guidance (sdedit, DiME, ACE or DDIM inversion — jdx.counterfactual). A separately
trained classifier gives a second opinion on the result, and the page says so when the two disagree or when
the label flipped with an almost invisible change."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from ..counterfactual import ACCEPT_DRAWS, ACCEPT_P, ACCEPT_T, CANDIDATES, DEFAULT, LADDER, METHODS, PER_METHOD
from ..second_opinion import ADVERSARIAL, judge_name, scale_words, targeted, verdict, with_article
from ..viz import trajectory_strip
from . import batches, compute, models
from .composites import probability_bars, signed_with_scale
from .errors import clear_when, clear_on_failure, follow
from .pictures import big, channel_mean
from .predict import ood_warning

EXPLAIN = """**What you see.** *What would have to change for the model to call this a …?* The image is
edited toward the classes you weight with the sliders (several sliders: a mix, e.g. half shirt, half coat).
**Method**: *sdedit* noises to t\\* and walks back with the classifier's gradient; *dime* adds
**keep close** λ: a pull of the predicted clean image back toward your input (it helps up to about 2; a stronger
pull jitters the pixels and the edit grows); *ace* redoes a first edit inside
a mask of where it changed, so everything else stays exactly as it was; *ddim-inversion* encodes the image
deterministically (at s = 0 it comes back unchanged); *adaptive* redoes, with a harder pull, an edit the model
does not still believe on noisy copies of it; *best-of* (the default) makes two dime edits and keeps the smaller of those the classifier still
calls the target on shifted and mirrored copies (if neither, the one that looks most like real training images of the target); its classifier pull is averaged over slightly shifted and mirrored
copies of the image, so it follows what makes the class, not pixel patterns that fool the classifier at one position. **t\\*** sets how much may change, **s** how hard the
classifier pulls. The difference map shows the edit: red pixels got brighter, blue darker. A second,
separately trained classifier checks the result: an edit only the steering model believes is not an
explanation."""

BENCHMARK_PLOT = Path(__file__).resolve().parents[2] / "assets" / "results" / "counterfactuals" / "validity_vs_l1.png"


def second_opinion(model):
    """The separately trained classifier for this model's data (same classes and image size), if one ships."""
    d = model.info.data
    name = judge_name(str(models.CHECKPOINT_DIR), tuple(d.get("class_names", [])), d.get("image_size"),
                      d.get("channels"))
    return None if name is None else models.get(name)


def verdicts(names, w, p0, p1, p_sep, l1: float, ood: bool = False) -> str:
    """The two classifiers' verdicts (jdx.second_opinion.verdict, as the CLI prints them) for the page. ood: the
    input is unlike the training data, where two classifiers agreeing says little (both must name a class, and
    on noise both can be steered), so no ✓ is given."""
    v = verdict(names, w, p0, p1, p_sep, l1)
    share = np.asarray(w, dtype=float) / np.sum(w)
    lines = [f"**Joint model** (steered the edit): **{v.joint}** ({p1.max():.0%})."]
    if v.missed:
        asked = ", ".join(targeted(names, w))
        lines.append(f"⚠ **The edit missed the target**: the joint model calls the result {v.joint}, which is not "
                     f"among the classes you asked for ({asked}). Raise t\\* or s, or lower λ (keep close).")
    elif v.short:
        gave = ", ".join(f"{n} {p1[names.index(n)]:.0%} (you asked {share[names.index(n)]:.0%})" for n in v.short)
        lines.append(f"⚠ **Only part of the mixture was reached**: the joint model gives {gave}. The result is "
                     f"{with_article(v.joint)}, not the mix you asked for.")
    if v.separate is None:
        lines.append("No separately trained classifier ships for these classes: no second opinion.")
        return "  \n".join(lines)
    lines.append(f"**Separate classifier** (second opinion): **{v.separate}** ({p_sep.max():.0%}).")
    if v.invisible and v.agree:
        lines.append(f"⚠ The label flipped with an almost invisible change (mean |Δ| {l1:.3f}). Both classifiers "
                     f"now say {v.joint}, so in pixels your picture lies close to the border between {v.before} "
                     f"and {v.joint}, however sure the classifier was of {v.before}: the edit shows where that "
                     f"border is, not what {with_article(v.joint)} looks like. Raise t\\* for a fuller edit.")
    elif v.invisible:
        lines.append(f"⚠ The label flipped with an almost invisible change (mean |Δ| {l1:.3f}): **{ADVERSARIAL}.** "
                     "Raise t\\* or lower s.")
    if not v.agree:
        lines.append(f"⚠ **The two classifiers disagree**: the joint model says {v.joint}, the separate classifier "
                     f"{v.separate}. The edit convinces only the model that steered it; do not read it as what "
                     f"{with_article(v.joint)} looks like.")
    elif w[p1.argmax()] > 0 and v.flipped and not v.invisible and not v.short:   # no ✓ beside a ⚠ above
        mix = "" if share[p1.argmax()] >= 1 else f" (its share of the mix you asked for: {share[p1.argmax()]:.0%})"
        if ood:
            lines.append(f"Both classifiers call the result {v.joint}, but on a picture unlike their training data "
                         "that agreement says little: both can be steered on noise.")
        elif v.weak:
            lines.append(f"⚠ Both classifiers call the result {v.joint}, but the separate one only at "
                         f"{p_sep.max():.0%}{mix}: **a weak second opinion**, not a convincing {v.joint}.")
        else:
            lines.append(f"✓ Both classifiers call the result **{v.joint}**{mix}.")
    if v.flipped and (words := scale_words(names, v.before, v.joint, l1)) is not None:
        # A scale, not a verdict: beside a ✓, a 0.040 edit toward Bag that still looked like a sneaker read as an
        # explanation (walkthrough); as a threshold the same numbers flagged 43 % of edits without telling apart
        # the ones an outside classifier disbelieves, so the page gives the numbers and the person looks.
        lines.append(f"For scale: {words}")
    return "  \n".join(lines)


def method_note(method: str, rung, t_star: int, scale: float, lam: float, target: str, held=None, mask=None) -> str:
    """What adaptive, best-of and ace did for this image (cf.rung, cf.held, cf.mask): adaptive's result equals
    dime's whenever its first rung is accepted, and the page said nothing, so the two looked like one method."""
    if method == "ace" and mask is not None:
        # "everything else stays exactly as it was" read as a small edit beside a map that was pink all over: at
        # ace's λ 0 the first edit's mask held 89 % of the sneaker example's pixels (walkthrough 6).
        return (f"ace redid the edit inside the mask of where its first edit changed: "
                f"{float(mask.float().mean()):.0%} of the pixels; every pixel outside it is your input's.\n\n")
    if rung is None or method not in ("adaptive", "best-of"):
        return ""
    r = int(rung)
    if method == "best-of":
        if held is not None and bool(held):
            return (f"best-of kept candidate {r + 1} of {CANDIDATES}: the smallest edit that the joint classifier "
                    f"still calls {target} on every shifted and mirrored copy.\n\n")
        return (f"best-of kept candidate {r + 1} of {CANDIDATES}: the classifier held neither edit on every shifted "
                f"copy, so it kept the one whose joint-model features lie nearest real training images of "
                f"{target}.\n\n")
    test = (f"its acceptance test: the target's mean probability on {ACCEPT_DRAWS} copies noised to t = "
            f"{ACCEPT_T[0]} reaches {ACCEPT_P:.0%}, so pixel patterns that fool it on the clean picture do not count")
    if r == 0:
        return (f"adaptive: the joint model accepted the first edit ({test}), so no harder redo ran (this is the "
                f"dime edit at these settings).\n\n")
    a, b, c = LADDER[r]          # r = −1 (none accepted): the last budget, which the image kept
    head = (f"the joint model accepted none of its budgets ({test}; the clean verdicts below can still agree); "
            f"this is the last" if r < 0 else f"the joint model did not accept the first edit ({test}); this is redo {r}")
    return (f"adaptive: {head}, made with t* = {t_star * a:g}, s = {scale * b:g}, λ = {lam * c:g} (a stronger pull "
            f"toward the target, with a stronger keep-close term to match), not the settings above.\n\n")


def _split(args, n_classes: int):
    """Gradio passes (w₀ … w_{K−1}, method, λ) positionally; older API calls pass the weights alone."""
    if len(args) >= 2 and isinstance(args[-2], str):
        return args[:-2], args[-2], args[-1]
    return args, None, None


EDITING = "Editing the picture toward the target…"   # shown at once on a press (the page's own first press too)
CF_CONCURRENCY = 32           # handlers mostly wait for the compute thread; more in flight → bigger shared passes


GUIDE_WORDS = {"x_t": "noisy classifier on x_t", "shifted": "noisy classifier, mean over shifted copies"}


def counterfactual(model_name: str, image, t_star: int = DEFAULT.t_star, scale: float = DEFAULT.scale,
                   seed: int = 0, *args, method: str | None = None, lam: float | None = None,
                   progress=gr.Progress()):
    """→ ((before, after) pair, difference map, probability bars, trajectory strip, summary with both verdicts).
    A model with no classifier gets empty pictures and the reason in the summary: the tab's first visit presses
    the button, and a red error was the first thing a visitor saw there with a diffusion-only model picked."""
    model = compute.run(lambda: models.get(model_name))
    if (why := models.no_classifier(model)) is not None:
        return None, None, None, None, f"*{why}*"
    x = models.image_input(model, image)          # here, not in the batch: a bad upload fails alone
    names = model.info.class_names
    weights, m, l = _split(args, len(names))
    method, lam = method or m or DEFAULT.method, lam if lam is not None else l
    if method not in METHODS:
        raise gr.Error(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    d = PER_METHOD[method]
    lam = d.lam if lam is None else float(lam)
    w = np.asarray([float(v or 0) for v in weights][:len(names)] + [0.0] * (len(names) - len(weights)))
    if (w < 0).any():
        raise gr.Error("Class weights cannot be negative: the sliders are the target mixture.")
    chosen = ""
    if w.sum() <= 0:
        # No slider set (how the page opens): the button still answers — toward the classifier's runner-up, the
        # class this picture is nearest to becoming — and says so, instead of a red error on the first click.
        p = compute.run(lambda: model.predict(x.to(next(model.parameters()).device))[0].cpu().numpy())
        k = int(np.argsort(-p)[1])
        w[k] = 1.0
        share = "under 1 %" if p[k] < 0.005 else f"{p[k]:.0%}"     # "(0%)" read as if the class were impossible
        chosen = (f"*No class slider was set: edited toward **{names[k]}**, the classifier's second choice for "
                  f"this picture (it gives it {share}). Move a class slider to pick the target.*\n\n")
    if len(weights) > len(names) and any(float(v or 0) for v in weights[len(names):]):
        raise gr.Error(f"{model.info.name} has {len(names)} classes; got weights for {len(weights)}.")
    T = model.schedule.T
    t_star = int(min(max(int(t_star), 1), T))
    n_steps = d.steps * (2 if method in ("ace", "ddim-inversion") else 1)    # two passes: a first edit / the encoder
    done = []

    def on_step(step):
        done.append(step.t)
        progress((min(len(done) + n_steps // 2 * (method in ("ace", "ddim-inversion")), n_steps), n_steps),
                 desc=f"editing, t = {step.t}")
    cf = batches.counterfactual(model_name, x, w / w.sum(), method=method, t_star=int(t_star), scale=float(scale),
                                lam=lam, steps=d.steps, seed=int(seed), record=True, callback=on_step)
    p0, p1 = cf.probs_before[0].cpu().numpy(), cf.probs_after[0].cpu().numpy()
    judge = second_opinion(model)
    p_sep = None if judge is None else compute.run(
        lambda: judge.predict(cf.x_cf.to(next(judge.parameters()).device))[0].cpu().numpy())
    diff = channel_mean(cf.x_cf - cf.x) / 2          # in [0, 1] pixel units
    l1 = float(cf.l1[0])
    summary = (f"**{names[p0.argmax()]}** ({p0.max():.0%}) → **{names[p1.argmax()]}** ({p1.max():.0%}); "
               f"target weight on the new top class {w[p1.argmax()] / w.sum():.0%}. Mean pixel change "
               f"L1 {l1:.3f}, RMS {float(cf.l2[0]):.3f} (pixels in [0, 1]); method {method}, t* = {t_star}, "
               f"s = {scale:g}, λ = {lam:g}, gradient: {GUIDE_WORDS.get(d.guide, d.guide)}.\n\n")
    warning = compute.run(lambda: ood_warning(model, cf.x))     # first: it qualifies every verdict below it
    asked = targeted(names, w)
    note = method_note(method, None if cf.rung is None else cf.rung[0], t_star, scale, lam,
                       asked[0] if len(asked) == 1 else "the target's classes",
                       None if cf.held is None else cf.held[0], None if cf.mask is None else cf.mask[0])
    summary = chosen + summary + note + (f"{warning}\n\n" if warning else "") + verdicts(names, w, p0, p1, p_sep, l1,
                                                                                 ood=bool(warning))
    return ((big(cf.x[0]), big(cf.x_cf[0])), signed_with_scale(diff, "x_cf − x: red brighter, blue darker"),
            probability_bars(p0, p1, names, w / w.sum(), p_sep),
            trajectory_strip(cf.steps, cf.x_cf, k=10, scale=3), summary)


def method_defaults(method: str):
    """Picking a method sets t*, s and λ to that method's defaults."""
    d = PER_METHOD.get(method, DEFAULT)
    return gr.update(value=d.t_star), gr.update(value=d.scale), gr.update(value=d.lam)


def build(model_box: gr.Dropdown, image: gr.Image, class_names: list[str]) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        with gr.Column(scale=1, elem_id="cf-sliders"):
            gr.Markdown("**Target mixture** (weights are normalised to sum to 1)")
            sliders = [gr.Slider(0, 1, value=0.0, step=0.05, label=name,
                                 elem_id=f"cf-w{k}") for k, name in enumerate(class_names)]
        with gr.Column(scale=2):
            with gr.Row():
                # Picking a method resets t*, s and λ to its defaults (method_defaults): said where it happens.
                method = gr.Dropdown(list(METHODS), value=DEFAULT.method, label="method", elem_id="cf-method",
                                     info="sets t*, s and λ to the method's defaults")
                t_star = gr.Slider(10, models.T_of(model_box.value), value=DEFAULT.t_star, step=10, label="how much may change: t*")
                scale = gr.Slider(0, 800, value=DEFAULT.scale, step=5, label="guidance scale s")
                # Up to 5, not 20: the pull is λ·sign(x̂₀ − x) on every pixel, and beyond ~2 it jitters pixels
                # around the input in 10 big steps, so the edit grows (a helper at λ 20: L1 0.166, target missed;
                # dev split, README: λ 3 gave larger edits than λ 2).
                lam = gr.Slider(0, 5, value=DEFAULT.lam, step=0.25, label="keep close: λ", elem_id="cf-lam")
                seed = gr.Number(0, precision=0, label="seed")
            # Beside the settings it acts on (it sat below every result, a screen away from the sliders).
            run = gr.Button("Make counterfactual", variant="primary", elem_id="cf-btn")
            summary = gr.Markdown("Drag a class slider to the right and release it.", elem_id="cf-summary")
            with gr.Row():
                compare = gr.ImageSlider(label="before | after (drag the divider)", type="pil", format="png",
                                         elem_classes="pixelated", elem_id="cf-compare")
                diff = gr.Image(label="difference", show_label=False, format="png", interactive=False,
                                elem_id="cf-diff")
            bars = gr.Image(label="p(y | x) before and after", show_label=False, format="png", interactive=False,
                            elem_id="cf-bars")
            strip = gr.Image(label="the edit's trajectory: x_t (top), x̂₀ (bottom), t* → 0", format="png",
                             interactive=False, elem_classes="pixelated")
            if BENCHMARK_PLOT.exists():
                with gr.Accordion("How this method compares (benchmark on Fashion-MNIST test images)", open=False):
                    gr.Image(str(BENCHMARK_PLOT), show_label=False, interactive=False, elem_id="cf-benchmark")
                    gr.Markdown("Validity: how often the separate classifier agrees with the target; L1: the mean "
                                "pixel change. Up and to the left is better. Made by `bench/counterfactuals.py`.")
    inputs = [model_box, image, t_star, scale, seed] + sliders + [method, lam]
    outputs = [compare, diff, bars, strip, summary]
    models.follow_T(model_box, t_star)
    # A new picture (or model) makes the shown edit someone else's: clear it in the browser, and say so.
    clear_when([image.change, model_box.change], outputs, "**Make counterfactual** (or release a slider)")
    presses = [run.click, t_star.release, scale.release, lam.release] + [s.release for s in sliders]
    # Said in the browser on the press itself, and the progress bar stays on the pictures: "press Make
    # counterfactual" stood there while the first visit's own press ran, and the bar drawn over the old verdict
    # left neither readable (walkthroughs).
    gr.on(presses, None, None, summary, js=f"() => {EDITING!r}", queue=False, api_visibility="private",
          show_progress="hidden")
    clear_on_failure(follow(presses, models.if_image(counterfactual, 5), inputs, outputs, api_name="counterfactual",
                            concurrency_limit=CF_CONCURRENCY, show_progress_on=[compare, diff, bars, strip]), outputs)
    method.input(method_defaults, method, [t_star, scale, lam], api_visibility="private").then(
        models.if_image(counterfactual, 5), inputs, outputs, api_visibility="private",
        concurrency_limit=CF_CONCURRENCY)
