"""Counterfactual methods (sdedit, dime, ace, ddim-inversion): each method's contract on the tiny joint model,
the benchmark on a handful of images, the CLI's --method and the app handler with each method."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import numpy as np

import importlib

import jdx
from jdx.cli import main
from jdx.counterfactual import METHODS, PER_METHOD, counterfactual
from jdx.counterfactual_methods import GUIDES, MAX_SHIFT, change_mask, ddim_invert, random_transforms, transform
from jdx.samplers import timesteps
from jdx.ui.composites import BLUE, GREY, ORANGE

cfm = importlib.import_module("jdx.counterfactual")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread; on a loaded machine the OpenMP team only waits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model(tiny_joint):
    return jdx.load(tiny_joint)


@pytest.fixture(scope="module")
def x(shapes_dir):
    from jdx.data import load_dataset
    data = load_dataset(str(shapes_dir), "train", 16, 1)
    return data.to_model(torch.tensor([0, 30, 60]))          # one square, one vbar, one hbar (24 per class)


@pytest.mark.parametrize("method", METHODS)
def test_shapes_mixture_record_and_seed(model, x, method):
    w = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])   # one mixture per image
    cf = counterfactual(model, x, w, method=method, t_star=20, scale=5.0, steps=4, seed=3, record=True)
    assert cf.x_cf.shape == x.shape and cf.probs_before.shape == cf.probs_after.shape == (3, 3)
    assert torch.allclose(cf.probs_after.sum(-1), torch.ones(3), atol=1e-5)
    n_steps = len(timesteps(20, 4)) - 1             # adaptive: one pass per rung that ran
    assert (len(cf.steps) == n_steps or method == "adaptive" and len(cf.steps) % n_steps == 0) and len(cf.steps)
    assert torch.isfinite(cf.x_cf).all()
    assert cf.l1.shape == cf.l2.shape == (3,) and (cf.l1 <= cf.l2 + 1e-6).all()
    again = counterfactual(model, x, w, method=method, t_star=20, scale=5.0, steps=4, seed=3)
    assert torch.equal(cf.x_cf, again.x_cf)                             # a seed reproduces the edit
    # One (C,) mixture for the whole batch is the same as that row repeated.
    one = counterfactual(model, x, [0.0, 1.0, 1.0], method=method, t_star=20, scale=5.0, steps=4, seed=3)
    rows = counterfactual(model, x, torch.tensor([[0.0, 0.5, 0.5]] * 3), method=method, t_star=20, scale=5.0,
                          steps=4, seed=3)
    assert torch.allclose(one.x_cf, rows.x_cf, atol=1e-6)


@pytest.mark.parametrize("method", ("sdedit", "dime", "ace"))
def test_seeds_differ_for_stochastic_starts(model, x, method):
    a, b = (counterfactual(model, x, [0, 0, 1], method=method, t_star=20, scale=5.0, steps=4, seed=s) for s in (0, 1))
    assert not torch.equal(a.x_cf, b.x_cf)


def test_guidance_moves_toward_the_target(model, x):
    """More guidance → a higher target probability, for every method (tiny model, mean over 3 images). The tiny
    classifier is weak (p ≈ 1/3), so the pull is strong: at s 200 best-of's choice between its candidates moved
    p by as much as the guidance did."""
    for method in METHODS:
        p = [counterfactual(model, x, [0, 1, 0], method=method, t_star=25, scale=s, steps=5, seed=0).probs_after[:, 1]
             .mean().item() for s in (0.0, 1000.0)]
        assert p[1] > p[0], (method, p)


def test_ddim_inversion_at_scale_zero_returns_the_input(model, x):
    """Encode to t* with DDIM run forward, decode unguided: the input comes back (up to the discretisation),
    far closer than an SDEdit round trip from the same t*."""
    inv = counterfactual(model, x, [1, 0, 0], method="ddim-inversion", t_star=10, scale=0.0, steps=10)
    sde = counterfactual(model, x, [1, 0, 0], method="sdedit", t_star=10, scale=0.0, steps=10)
    assert inv.l1.max() < 0.02, inv.l1
    assert inv.l1.mean() < sde.l1.mean() / 4, (inv.l1, sde.l1)
    # The encoder alone is deterministic and really moves away from x (it is not the identity).
    ts = timesteps(10, 10)[::-1]
    x_t = ddim_invert(model.eps_fn, x, ts, model.schedule)
    assert torch.equal(x_t, ddim_invert(model.eps_fn, x, ts, model.schedule))
    assert (x_t - x).abs().mean() > 0.02


def test_keep_close_pulls_the_edit_back(model, x):
    """DiME/ACE/best-of at scale 0: λ‖x̂₀ − x‖₁ keeps the result near the input; a larger λ changes less."""
    for method in ("dime", "ace", "best-of"):
        loose = counterfactual(model, x, [0, 0, 1], method=method, t_star=5, scale=0.0, lam=0.0, steps=5).l1.mean()
        close = counterfactual(model, x, [0, 0, 1], method=method, t_star=5, scale=0.0, lam=1.0, steps=5).l1.mean()
        assert close < loose and close < 0.05, (method, loose, close)


def test_ace_mask_confines_the_change(model, x):
    cf = counterfactual(model, x, [0, 0, 1], method="ace", t_star=25, scale=100.0, steps=5, seed=0)
    assert cf.mask is not None and cf.mask.shape == (3, 1, 16, 16)
    outside = (1 - cf.mask).expand_as(x).bool()
    assert outside.any() and torch.equal(cf.x_cf[outside], x[outside])     # untouched outside the mask, exactly
    assert cf.mask.sum() > 0 and (cf.x_cf - x)[~outside].abs().sum() > 0


def test_change_mask_threshold_and_dilation():
    x = torch.zeros(1, 1, 9, 9)
    edit = x.clone()
    edit[0, 0, 4, 4] = 1.0                         # a change of 0.5 in [0, 1] units at the centre
    edit[0, 0, 0, 0] = 0.1                         # below the threshold
    assert change_mask(x, edit, 0.1, 0).sum() == 1
    m = change_mask(x, edit, 0.1, 1)
    assert m.sum() == 9 and m[0, 0, 3:6, 3:6].eq(1).all() and m[0, 0, 0, 0] == 0


def test_bad_arguments(model, x):
    with pytest.raises(ValueError, match="unknown method"):
        counterfactual(model, x, [1, 0, 0], method="nope")
    with pytest.raises(ValueError, match="unknown guide"):
        counterfactual(model, x, [1, 0, 0], method="dime", t_star=10, guide="nope")
    with pytest.raises(ValueError, match="t\\* must be"):
        counterfactual(model, x, [1, 0, 0], t_star=51)
    with pytest.raises(ValueError, match="class weights"):
        counterfactual(model, x, [0, 0, 0], t_star=10)


@pytest.mark.parametrize("guide", GUIDES)
def test_every_guide_runs(model, x, guide):
    cf = counterfactual(model, x, [0, 1, 0], method="dime", t_star=10, scale=50.0, lam=0.1, steps=2, guide=guide)
    assert torch.isfinite(cf.x_cf).all()


def test_shifted_guide_transforms_and_their_gradient():
    """The identity comes first, shifts stay within MAX_SHIFT, and the gradient goes back through each τ:
    ∇_x ⟨τ(x), v⟩ = τ⁻¹(v) (a shift is a permutation of pixels, a mirror too)."""
    taus = random_transforms(6, torch.Generator().manual_seed(0))
    assert taus[0] == (0, 0, False) and all(abs(dy) <= MAX_SHIFT and abs(dx) <= MAX_SHIFT for dy, dx, _ in taus)
    assert len(set(taus)) > 1
    x, v = torch.randn(2, 1, 6, 6, requires_grad=True), torch.randn(2, 1, 6, 6)
    for dy, dx, mirror in taus:
        (g,) = torch.autograd.grad((transform(x, (dy, dx, mirror)) * v).sum(), x)
        back = v.flip(3) if mirror else v
        assert torch.equal(g, torch.roll(back, (-dy, -dx), (2, 3)))


def test_shifted_guide_rows_do_not_depend_on_their_batch(model, x):
    """The transformations are drawn from their own stream, the same for a batch and for a row alone, so the
    app's batched requests get the answer each would get alone; and the guide is not the plain one."""
    kw = dict(method="dime", t_star=20, scale=50.0, lam=0.1, steps=3, guide="shifted")
    w = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    batch = counterfactual(model, x, w, seed=[5, 6, 7], **kw).x_cf
    alone = counterfactual(model, x[1:2], w[1:2], seed=[6], **kw).x_cf
    assert torch.allclose(batch[1:2], alone, atol=1e-4)
    plain = counterfactual(model, x, w, seed=[5, 6, 7], **(kw | {"guide": "x_t"})).x_cf
    assert not torch.allclose(batch, plain, atol=1e-3)


def test_benchmark_on_a_handful_of_images(tiny_joint, tiny_classifier, shapes_dir, tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench import counterfactuals as bench
    from jdx.counterfactual import DEFAULT
    out = tmp_path / "cf"
    bench.main(["--ckpt", str(tiny_joint), "--classifier", str(tiny_classifier), "--data", str(shapes_dir), "--n", "4",
                "--configs", "default", "sdedit-t150-s200", "--steps", "2", "--out", str(out)])
    runs = json.loads((out / "counterfactuals.json").read_text())
    assert len(runs) == 2 and (out / "validity_vs_l1.png").stat().st_size > 0
    for r in runs.values():
        m = r["metrics"]
        assert m["n"] == 4 and 0 <= m["flip_joint"] <= 1 and 0 <= m["validity_separate"] <= 1
        assert 0 <= m["l1"] <= m["rms"] <= 1 and -1 <= m["cout"] <= 1 and m["fid"] >= 0 and m["seconds_per_edit"] > 0
        assert r["command"].startswith("python bench/counterfactuals.py")
    assert f"| default-random-n4 | {DEFAULT.method} |" in (out / "counterfactuals.md").read_text()
    mtime = (out / "runs").stat().st_mtime_ns
    bench.main(["--ckpt", str(tiny_joint), "--classifier", str(tiny_classifier), "--data", str(shapes_dir), "--n", "4",
                "--configs", "default", "--steps", "2", "--out", str(out)])    # resumes: nothing recomputed
    assert (out / "runs").stat().st_mtime_ns == mtime


def test_cout_is_the_mean_of_the_insertion_curve(model, x):
    from bench.counterfactuals import cout
    source, target = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])
    same = cout(model, x, x, source, target)                           # nothing changes: a flat curve
    p = model.predict(x)
    assert torch.allclose(same, p.gather(1, target[:, None])[:, 0] - p.gather(1, source[:, None])[:, 0], atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_cli_method(tiny_joint, shapes_dir, tmp_path, method):
    out = tmp_path / method
    src = str(shapes_dir / "square" / "0.png")
    assert main(["counterfactual", str(tiny_joint), src, "--target", "vbar", "--method", method, "--noise", "20",
                 "--guidance", "50", "--lam", "0.1", "--steps", "3", "--out", str(out)]) == 0
    row = json.loads((out / "summary.jsonl").read_text().splitlines()[0])
    assert row["method"] == method and row["lam"] == 0.1 and row["t_star"] == 20 and (out / "0.png").exists()
    assert row["guide"] == PER_METHOD[method].guide
    # which candidate best-of kept and whether it was held; adaptive's rung; nothing for the one-pass methods
    assert (row["held"] is not None) == (method == "best-of")
    assert (row["rung"] is not None) == (method in ("best-of", "adaptive"))


def test_cli_guide(tiny_joint, shapes_dir, tmp_path):
    out = tmp_path / "guide"
    assert main(["counterfactual", str(tiny_joint), str(shapes_dir / "square" / "0.png"), "--target", "vbar",
                 "--method", "dime", "--guide", "shifted", "--noise", "20", "--steps", "3", "--out", str(out)]) == 0
    assert json.loads((out / "summary.jsonl").read_text())["guide"] == "shifted"


def test_cli_defaults_come_from_the_library(tiny_joint, shapes_dir, tmp_path):
    from jdx.counterfactual import DEFAULT
    out = tmp_path / "default"
    assert main(["counterfactual", str(tiny_joint), str(shapes_dir / "square" / "0.png"), "--target", "hbar",
                 "--noise", "20", "--out", str(out)]) == 0
    row = json.loads((out / "summary.jsonl").read_text())
    assert (row["method"], row["guidance"], row["lam"]) == (DEFAULT.method, DEFAULT.scale, DEFAULT.lam)


@pytest.mark.parametrize("method", METHODS)
def test_app_handler_with_each_method(tiny_joint, shapes_dir, app_checkpoints, method):
    pytest.importorskip("gradio")
    from jdx.ui import counterfactual as tab
    app_checkpoints(**{"tiny-joint": tiny_joint})
    d = PER_METHOD[method]
    pair, diff, bars, strip, summary = tab.counterfactual(
        "tiny-joint", str(shapes_dir / "square" / "0.png"), 30, 50.0, 0, 0.0, 1.0, 0.0, method=method,
        lam=d.lam, progress=lambda *a, **k: None)
    assert pair[0].size == pair[1].size and "→" in summary and f"method {method}" in summary
    assert diff.width > diff.height + 20                                # the map and its colour bar beside it
    assert strip is not None and not _has_colour(bars, ORANGE)          # no judge in the folder: no orange ticks
    assert "Joint model" in summary and "no second opinion" in summary    # no separate classifier in the folder
    assert ("of the pixels; every pixel outside it is your input's" in summary) == (method == "ace")


def test_verdicts_warn_in_words():
    pytest.importorskip("gradio")
    from jdx.ui.counterfactual import verdicts
    import numpy as np
    names, w = ["square", "vbar", "hbar"], np.array([0.0, 1.0, 0.0])
    p0, p1 = np.array([0.9, 0.05, 0.05]), np.array([0.1, 0.8, 0.1])
    agree = verdicts(names, w, p0, p1, np.array([0.1, 0.7, 0.2]), l1=0.1)
    assert "Both classifiers call the result **vbar**" in agree and "⚠️" not in agree
    disagree = verdicts(names, w, p0, p1, np.array([0.8, 0.1, 0.1]), l1=0.1)
    assert "disagree" in disagree and "separate classifier square" in disagree and "adversarial" not in disagree
    invisible = verdicts(names, w, p0, p1, np.array([0.8, 0.1, 0.1]), l1=0.005)
    assert "adversarial edit, not an explanation" in invisible and "disagree" in invisible
    weak = verdicts(names, w, p0, p1, np.array([0.3, 0.55, 0.15]), l1=0.1)    # agrees, at 55 %
    assert "weak second opinion" in weak and "✓" not in weak
    noise = verdicts(names, w, p0, p1, np.array([0.1, 0.9, 0.0]), l1=0.1, ood=True)   # agreement on an OOD input
    assert "says little" in noise and "✓" not in noise
    fooled = verdicts(names, w, p0, p1, np.array([0.1, 0.9, 0.0]), l1=0.005)   # both agree, but nothing visible
    assert "almost invisible" in fooled and "border between square and vbar" in fooled and "✓" not in fooled
    half = verdicts(names, np.array([0.0, 1.0, 1.0]), p0, np.array([0.05, 0.9, 0.05]), np.array([0.05, 0.9, 0.05]),
                    l1=0.1)                               # asked for a vbar–hbar mix, got a vbar
    assert "Only part of the mixture" in half and "hbar 5% (you asked 50%)" in half and "✓" not in half
    even = verdicts(names, np.array([0.0, 1.0, 1.0]), p0, np.array([0.05, 0.5, 0.45]), np.array([0.1, 0.45, 0.45]),
                    l1=0.1)                               # the mix reached: 45 % is a strong vote for a 50 % share
    assert "✓" in even and "share of the mix you asked for: 50%" in even and "weak" not in even
    mix = np.array([0.0, 0.5, 0.5])                        # asked for vbar or hbar, got square
    missed = verdicts(names, mix, np.array([0.1, 0.8, 0.1]), np.array([0.7, 0.2, 0.1]), np.array([0.8, 0.1, 0.1]),
                      l1=0.1)
    assert "missed the target" in missed and "(vbar, hbar)" in missed and "missed" not in agree


def test_the_page_says_what_adaptive_and_best_of_did():
    pytest.importorskip("gradio")
    from jdx.counterfactual import CANDIDATES, LADDER
    from jdx.ui.counterfactual import method_note
    assert method_note("dime", None, 300, 400, 1.5, "Bag") == ""
    assert "no harder redo ran" in method_note("adaptive", 0, 300, 400, 1.5, "Bag")
    redo = method_note("adaptive", 1, 300, 400, 1.5, "Bag")
    assert "redo 1" in redo and f"s = {400 * LADDER[1][1]:g}" in redo
    assert "accepted none" in method_note("adaptive", -1, 300, 400, 1.5, "Bag")
    assert f"candidate 2 of {CANDIDATES}" in method_note("best-of", 1, 300, 400, 2, "Bag")
    assert "smallest edit" in method_note("best-of", 1, 250, 400, 1.5, "Bag", held=torch.tensor(True))
    assert "nearest real training images" in method_note("best-of", 0, 250, 400, 1.5, "Bag", held=torch.tensor(False))


def test_app_handler_asks_the_separate_classifier(tiny_joint, tiny_classifier, shapes_dir, app_checkpoints):
    pytest.importorskip("gradio")
    from jdx.ui import counterfactual as tab
    app_checkpoints(**{"tiny-joint": tiny_joint, "tiny-clf": tiny_classifier})
    # Positional, as Gradio passes them: weights, then method and λ.
    *_, bars, strip, summary = tab.counterfactual("tiny-joint", str(shapes_dir / "vbar" / "0.png"), 30, 50.0, 0,
                                                  0.0, 0.0, 1.0, "dime", 0.5, progress=lambda *a, **k: None)
    assert "Separate classifier" in summary and "λ = 0.5" in summary and "method dime" in summary
    assert _has_colour(bars, ORANGE) and _has_colour(bars, BLUE) and _has_colour(bars, GREY)   # the judge's ticks


def _has_colour(picture, rgb) -> bool:
    return bool((np.asarray(picture.convert("RGB")) == np.array(rgb, dtype=np.uint8)).all(-1).any())


def test_adaptive_rows_do_not_depend_on_their_batch(model, x):
    """Row i of a batched adaptive call equals the same call on x[i:i+1] with seed[i] — rungs, acceptance
    noise and all (the app batches users' requests)."""
    w = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    kw = dict(method="adaptive", t_star=30, scale=50.0, steps=3)
    batch = counterfactual(model, x, w, seed=[5, 6, 7], **kw)
    assert batch.rung.shape == (3,) and ((batch.rung >= -1) & (batch.rung < len(cfm.LADDER) - 1)).all()
    for i in range(3):
        one = counterfactual(model, x[i:i + 1], w[i:i + 1], seed=[5 + i], **kw)
        assert torch.allclose(one.x_cf[0], batch.x_cf[i], atol=1e-5) and one.rung[0] == batch.rung[i]


@pytest.mark.parametrize("accept_p, rung", [(0.0, 0), (2.0, -1)])
def test_adaptive_stops_at_the_first_accepted_rung(model, x, monkeypatch, accept_p, rung):
    """Accept everything: every row is the first rung's DiME edit; accept nothing: every row is the last's."""
    monkeypatch.setattr(cfm, "ACCEPT_P", accept_p)
    t_star, scale = 30, 50.0
    cf = counterfactual(model, x, [0, 0, 1], method="adaptive", t_star=t_star, scale=scale, steps=3, seed=[1, 2, 3])
    f_t, f_s, f_lam = cfm.LADDER[rung]
    dime = counterfactual(model, x, [0, 0, 1], method="dime", t_star=max(1, round(f_t * t_star)), scale=f_s * scale,
                          lam=f_lam * cfm.PER_METHOD["adaptive"].lam, steps=3, seed=[1, 2, 3])
    assert torch.allclose(cf.x_cf, dime.x_cf, atol=1e-5) and (cf.rung == rung).all()


def test_adaptive_steps_cover_the_whole_batch(model, x):
    """Every step the callback sees has the whole batch, also in rungs that run only the pending rows."""
    seen = []
    counterfactual(model, x, [0, 1, 0], method="adaptive", t_star=30, scale=50.0, steps=3, seed=[1, 2, 3],
                   callback=lambda s: seen.append(s.x_t.shape[0]))
    assert seen and set(seen) == {3}


def test_robust_target_probability(model, x):
    from jdx.counterfactual_methods import robust_target_probability
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    p = robust_target_probability(model, x, w, [5, 10], 2, [0, 1, 2])
    assert p.shape == (3,) and (p >= 0).all() and (p[:2] <= 1 + 1e-6).all() and (p[2] <= 2 + 1e-6)
    assert torch.equal(p, robust_target_probability(model, x, w, [5, 10], 2, [0, 1, 2]))      # seeded
    assert torch.allclose(p[1:], robust_target_probability(model, x[1:], w[1:], [5, 10], 2, [1, 2]), atol=1e-6)
    # One noise level, many draws, against the classifier's own probabilities at that level.
    one = robust_target_probability(model, x[:1], w[:1], [10], 1, [4])
    g = torch.Generator().manual_seed(4 + 7919)
    e = torch.randn((1, *x.shape[1:]), generator=g)
    ref = model.classify(model.schedule.noise_to(x[:1], 10, e), 10).softmax(-1)[0, 0]
    assert torch.allclose(one[0], ref, atol=1e-6)


def test_verdict_in_words():
    from jdx.second_opinion import ADVERSARIAL, verdict
    names, w = ["square", "vbar", "hbar"], [0.0, 1.0, 0.0]
    p0, p1 = [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]
    ok = verdict(names, w, p0, p1, [0.1, 0.7, 0.2], l1=0.1)
    assert (ok.joint, ok.separate, ok.agree, ok.invisible, ok.warnings, ok.believed) == ("vbar", "vbar", True,
                                                                                          False, [], True)
    weak = verdict(names, w, p0, p1, [0.3, 0.55, 0.15], l1=0.1)
    assert weak.agree and weak.weak and weak.believed and "weakly (vbar at 55% < 70%)" in weak.warnings[0]
    bad = verdict(names, w, p0, p1, [0.8, 0.1, 0.1], l1=0.005)
    assert bad.agree is False and bad.invisible and not bad.believed and len(bad.warnings) == 2
    assert ADVERSARIAL in bad.warnings[0] and "disagree" in bad.warnings[1] and "square" in bad.warnings[1]
    alone = verdict(names, w, p0, p1, None, l1=0.1)
    assert alone.separate is None and alone.agree is None and alone.warnings == []
    elsewhere = verdict(names, w, p0, [0.2, 0.1, 0.7], [0.1, 0.1, 0.8], l1=0.1)   # both say hbar; asked vbar
    assert elsewhere.agree and elsewhere.missed and not elsewhere.believed
    assert "missed the target" in elsewhere.warnings[0] and "(vbar)" in elsewhere.warnings[0]
    # a tiny flip both classifiers believe: the picture lies near the border in pixels — said so, not adversarial
    border = verdict(names, w, p0, p1, [0.1, 0.8, 0.1], l1=0.01)
    assert border.invisible and border.agree and not border.believed
    assert "border between square and vbar" in border.warnings[0] and ADVERSARIAL not in border.warnings[0]
    from jdx.second_opinion import with_article
    assert (with_article("Ankle boot"), with_article("Bag")) == ("an Ankle boot", "a Bag")            # "not what a Ankle boot looks like"
    # a 50/50 mixture: its top class is judged against its share, and a class of the mix left out is said
    mix = [0.0, 1.0, 1.0]
    even = verdict(names, mix, p0, [0.05, 0.5, 0.45], [0.1, 0.45, 0.45], l1=0.1)
    assert even.agree and not even.weak and not even.short and even.believed and even.warnings == []
    half = verdict(names, mix, p0, [0.05, 0.9, 0.05], [0.05, 0.9, 0.05], l1=0.1)
    assert half.short == ("hbar",) and not half.believed
    assert "only part of the mixture" in half.warnings[0] and "hbar 5% (asked 50%)" in half.warnings[0]


def test_cli_judge(tiny_joint, tiny_classifier, shapes_dir, tmp_path, capsys):
    """The CLI prints and writes the separate classifier's verdict: found beside the checkpoint, named with
    --judge, or switched off with --judge none; warnings in words."""
    import shutil
    folder = tmp_path / "ck"
    folder.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_joint.with_suffix(suffix), folder / f"tiny-joint{suffix}")
        shutil.copy(tiny_classifier.with_suffix(suffix), folder / f"tiny-clf{suffix}")
    src = str(shapes_dir / "square" / "0.png")
    common = ["--target", "vbar", "--method", "dime", "--noise", "20", "--guidance", "50", "--steps", "3"]
    rows = {}
    for name, extra in (("beside", []), ("named", ["--judge", str(tiny_classifier)]), ("none", ["--judge", "none"])):
        capsys.readouterr()
        assert main(["counterfactual", str(folder / "tiny-joint"), src, *common, *extra, "--out",
                     str(tmp_path / name)]) == 0
        rows[name] = json.loads((tmp_path / name / "summary.jsonl").read_text())
        printed = capsys.readouterr().out
        assert ("no second opinion" in printed) == (name == "none")
        for warning in rows[name]["warnings"]:
            assert f"warning: {warning}" in printed
    assert rows["beside"]["judge"] == "tiny-clf" and rows["named"]["judge"] == tiny_classifier.name
    assert rows["beside"]["probs_separate"] == rows["named"]["probs_separate"]
    assert rows["beside"]["separate"] in ("square", "vbar", "hbar") and len(rows["beside"]["probs_separate"]) == 3
    assert rows["beside"]["agree"] == (rows["beside"]["separate"] == rows["beside"]["after"])
    assert rows["none"]["judge"] is None and rows["none"]["separate"] is None and rows["none"]["agree"] is None
    # --json prints the same row.
    assert main(["counterfactual", str(folder / "tiny-joint"), src, *common, "--json", "--out", str(tmp_path / "j")]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["out"].startswith(str(tmp_path / "j"))
    assert {k: v for k, v in printed.items() if k != "out"} == {k: v for k, v in rows["beside"].items() if k != "out"}


def test_app_counterfactual_warns_on_a_picture_unlike_the_training_data(tmp_path):
    """Noise gets a confident edit all the same: the page must say the picture is unlike the training data."""
    pytest.importorskip("gradio")
    from PIL import Image
    from jdx.ui import counterfactual as tab
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(noise)
    w = [0.0] * 8 + [1.0, 0.0]                                             # toward Bag
    said = {}
    for name, path in (("noise", noise), ("sneaker", ROOT / "assets/examples/7-sneaker-0.png")):
        *_, said[name] = tab.counterfactual("fmnist-joint", str(path), 300, 400, 0, *w, "dime", 1.5,
                                            progress=lambda *a, **k: None)
    assert "unlike the training data" in said["noise"] and "unlike the training data" not in said["sneaker"]


def test_app_counterfactual_with_no_slider_set_edits_toward_the_runner_up():
    """The page opens with every class slider at 0: the first click on "Make counterfactual" must answer (toward
    the classifier's second choice, said in words), not raise a red error; negative weights are still refused."""
    pytest.importorskip("gradio")
    import gradio as gr
    from jdx.ui import counterfactual as tab, models
    sneaker = str(ROOT / "assets/examples/7-sneaker-0.png")
    model = models.get("fmnist-joint")
    p = model.predict(models.image_input(model, sneaker))[0]
    runner_up = model.info.class_names[int(p.argsort(descending=True)[1])]
    *_, summary = tab.counterfactual("fmnist-joint", sneaker, 300, 400, 0, *([0.0] * 10), "dime", 1.5,
                                     progress=lambda *a, **k: None)
    assert f"edited toward **{runner_up}**" in summary and "second choice" in summary
    with pytest.raises(gr.Error, match="negative"):
        tab.counterfactual("fmnist-joint", sneaker, 300, 400, 0, *([0.0] * 9 + [-1.0]), "dime", 1.5,
                           progress=lambda *a, **k: None)


@pytest.mark.parametrize("hold_p", [0.0, 0.5, 1.01])
def test_best_of_keeps_the_smallest_held_candidate_else_the_most_typical(model, x, monkeypatch, hold_p):
    """best-of = CANDIDATES dime edits (row i, candidate m from seed_i + m·SEED_STEP); each row keeps the smallest
    edit among the candidates held at ≥ HOLD_P on every shifted copy, and when none is held, the one whose
    joint-model features are nearest the target's training references. HOLD_P 0: every candidate is held;
    1.01: none can be."""
    from jdx.counterfactual_references import target_distance
    from jdx.counterfactual_methods import held_probability
    monkeypatch.setattr(cfm, "HOLD_P", hold_p)
    w = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    d = cfm.PER_METHOD["best-of"]                          # the candidates' λ and guide, not dime's defaults
    kw = dict(t_star=30, scale=50.0, steps=3, lam=d.lam, guide=d.guide)
    cf = counterfactual(model, x, w, method="best-of", seed=[4, 5, 6], **kw)
    cands = [counterfactual(model, x, w, method="dime", seed=[v + m * cfm.SEED_STEP for v in (4, 5, 6)], **kw)
             for m in range(cfm.CANDIDATES)]
    typical = torch.stack([target_distance(model, c.x_cf, w) for c in cands]).argmin(0)         # (B,)
    held = torch.stack([held_probability(model, c.x_cf, w) >= hold_p for c in cands])         # (M, B)
    size = torch.stack([c.l1 for c in cands]).masked_fill(~held, float("inf"))
    expected = torch.where(held.any(0), size.argmin(0), typical)
    assert cf.rung is not None and torch.equal(cf.rung, expected)
    assert torch.equal(cf.held, held[expected, torch.arange(3)])
    assert cf.held.all() if hold_p == 0 else (not cf.held.any() if hold_p > 1 else True)
    for i in range(3):
        assert torch.allclose(cf.x_cf[i], cands[cf.rung[i]].x_cf[i], atol=1e-5)
    assert len({tuple(c.x_cf.flatten().tolist()) for c in cands}) == cfm.CANDIDATES       # the candidates differ


def test_held_probability_is_the_worst_shifted_copy(model, x):
    """min over the identity and HOLD_SHIFTS − 1 shifted/mirrored copies of the target mixture's probability
    (normalised by its largest weight): never above the unshifted copy's."""
    from jdx.counterfactual_methods import held_probability
    w = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    p = held_probability(model, x, w)
    p0 = (w * model.predict(x)).sum(-1) / w.max(-1).values
    assert p.shape == (3,) and (p <= p0 + 1e-6).all() and (p >= 0).all()
    assert torch.allclose(held_probability(model, x, w, k=1), p0, atol=1e-5)


def test_best_of_rows_do_not_depend_on_their_batch(model, x):
    w = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    kw = dict(method="best-of", t_star=30, scale=50.0, steps=3)
    batch = counterfactual(model, x, w, seed=[5, 6, 7], **kw)
    for i in range(3):
        one = counterfactual(model, x[i:i + 1], w[i:i + 1], seed=[5 + i], **kw)
        assert torch.allclose(one.x_cf[0], batch.x_cf[i], atol=1e-5) and one.rung[0] == batch.rung[i]
        assert one.held[0] == batch.held[i]


def test_target_distance(model, x, shapes_dir):
    """d(x) = Σ_c w_c · mean distance of f(x) to the k nearest references of class c. The references hold every
    training image of the tiny set (under REFERENCES_PER_CLASS per class), so a training image is at distance 0
    from its own class with k = 1 and farther from the others; k = 10 and a mixture match a brute-force sum."""
    from jdx.counterfactual_references import references, target_distance
    from jdx.ood import pooled_features as features
    from jdx.data import load_dataset
    y = load_dataset(str(shapes_dir), "train", 16, 1).labels[torch.tensor([0, 30, 60])]
    refs = references(model)
    assert refs.features.shape[0] == refs.labels.shape[0] and set(refs.labels.tolist()) == {0, 1, 2}
    d1 = torch.stack([target_distance(model, x, torch.eye(3)[c].expand(3, 3), k=1) for c in range(3)], 1)  # (B, C)
    assert torch.allclose(d1.gather(1, y[:, None])[:, 0], torch.zeros(3), atol=1e-2), (d1, y)
    assert torch.equal(d1.argmin(1), y)
    w = torch.tensor([[0.25, 0.75, 0.0]] * 3)
    dist = torch.cdist(features(model, x), refs.features)
    brute = sum(w[0, c] * dist[:, refs.labels == c].sort(1).values[:, :10].mean(1) for c in range(2))
    assert torch.allclose(target_distance(model, x, w), brute, atol=1e-4)


def test_the_page_gives_a_scale_from_real_images_of_the_pair():
    """bench/real_distances.py's table: how far real Fashion-MNIST images of one class lie from the nearest real
    image of another; the page prints it beside the edit's own size."""
    pytest.importorskip("gradio")
    import numpy as np
    from jdx.second_opinion import real_scale
    from jdx.ui.counterfactual import verdicts
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    p5, median = real_scale(names, "Sneaker", "Bag")
    assert 0.03 < p5 < median < 0.3
    assert real_scale(names, "Bag", "Bag") is None and real_scale(names[::-1], "Bag", "Coat") is None
    w, p0, p1 = np.eye(10)[8], np.eye(10)[7] * 0.9 + 0.01, np.eye(10)[8] * 0.9 + 0.01
    shown = verdicts(names, w, p0, p1, p1, l1=0.04)
    assert "✓" in shown and f"a real Sneaker lies L1 {median:.3f} from the nearest real Bag" in shown
    assert "L1 0.040 is smaller than 95 % of real pairs: it may still look like a Sneaker" in shown
    assert "is 3.0× the median pair" in verdicts(names, w, p0, p1, p1, l1=3 * median)
    assert "is between the two" in verdicts(names, w, p0, p1, p1, l1=(p5 + median) / 2)
    assert "For scale" not in verdicts(names, w, p0, p0, p0, l1=0.04)          # not flipped: nothing to compare
