"""The app through gradio_client against a launched server: every endpoint, bad uploads, and many clients
at once — on tiny checkpoints (a 16×16 joint model of three shapes, a diffusion-only model, the toy models)."""
from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jdx.cli import main
from tests.conftest import TINY, shape_image

ROOT = Path(__file__).resolve().parents[1]
gr = pytest.importorskip("gradio")
client_mod = pytest.importorskip("gradio_client")
handle_file = client_mod.handle_file
AppError = pytest.importorskip("gradio_client.exceptions").AppError


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_joint, shapes_dir):
    from jdx.ui import layout, models
    folder = tmp_path_factory.mktemp("app-ck")
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_joint.with_suffix(suffix), folder / f"tiny-joint{suffix}")
        for toy in ("moons", "gmm", "spirals"):
            for name in (f"toy-{toy}", f"toy-{toy}-cdm"):
                shutil.copy(ROOT / "checkpoints" / f"{name}{suffix}", folder / f"{name}{suffix}")
        for diffusion in ("vpsde", "cld", "learned"):
            shutil.copy(ROOT / "checkpoints" / f"toy-moons-{diffusion}{suffix}", folder / f"toy-moons-{diffusion}{suffix}")
    assert main(["train", "ddpm", "--data", str(shapes_dir), "--out", str(folder / "tiny-ddpm"), "--steps", "3"]
                + TINY) == 0
    assert main(["train", "cdm", "--data", str(shapes_dir), "--out", str(folder / "tiny-cdm"), "--steps", "3"]
                + TINY) == 0
    assert main(["train", "mdm", "--diffusion", "cld", "--data", str(shapes_dir), "--out", str(folder / "tiny-mdm"),
                 "--steps", "3"] + [a for a in TINY if a not in ("--T", "50")]) == 0
    old = models.CHECKPOINT_DIR
    models.CHECKPOINT_DIR = folder
    demo = layout.build("tiny-joint")
    layout.launch(demo, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()
    models.CHECKPOINT_DIR = old


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Good and bad uploads."""
    d = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(1)
    out = {k: d / f"{k}.png" for k in ("square", "vbar", "hbar")}
    for k, (name, path) in enumerate(out.items()):
        Image.fromarray(shape_image(k, rng)).resize((64, 64), Image.Resampling.NEAREST).save(path)
    rgba = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    rgba.paste((255, 255, 255, 255), (14, 2, 22, 28))          # a vertical bar on transparency
    rgba.save(out.setdefault("rgba", d / "rgba.png"))
    Image.fromarray((shape_image(2, rng).astype(np.uint16) * 257)).save(out.setdefault("16bit", d / "16bit.png"))
    frames = [Image.fromarray(shape_image(1, rng)) for _ in range(3)]
    frames[0].save(out.setdefault("animated", d / "animated.gif"), save_all=True, append_images=frames[1:])
    (d / "text.png").write_text("this is not an image")
    (d / "empty.png").write_bytes(b"")
    (d / "truncated.png").write_bytes(out["square"].read_bytes()[:60])
    Image.new("L", (1, 1)).save(d / "one.png")
    Image.new("L", (10000, 10000)).save(d / "huge.png")       # compresses to well under the upload cap
    (d / "big.png").write_bytes(b"\x89PNG" + rng.bytes(11 * 2**20))
    for k in ("text", "empty", "truncated", "one", "huge", "big"):
        out[k] = d / f"{k}.png"
    return out


@pytest.fixture(scope="module")
def client(app_url):
    return client_mod.Client(app_url, verbose=False, ssl_verify=False)


def top(label: dict) -> str:
    return label["label"]


def test_every_endpoint_is_named(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    expected = {"/predict", "/prepared", "/attribute", "/attribute_class", "/robustness", "/denoise", "/scrub", "/gif",
                "/gradients", "/counterfactual", "/forward", "/toy_field", "/toy_classes", "/toy_reverse",
                "/toy_counterfactual", "/model_info", "/example", "/use_drawing", "/noise_level", "/toy_cdm_field",
                "/representations", "/aux_particles", "/aux_image"}
    assert expected <= names, expected - names


def test_predict_attribute_robustness(client, images):
    label, ood_note = client.predict("tiny-joint", handle_file(str(images["vbar"])), api_name="/predict")
    assert "training data" in ood_note and "What was done to your upload" in ood_note
    seen, stages = client.predict("tiny-joint", handle_file(str(images["vbar"])), api_name="/prepared")
    assert len(stages) >= 1
    assert {c["label"] for c in label["confidences"]} == {"square", "vbar", "hbar"}
    assert abs(sum(c["confidence"] for c in label["confidences"]) - 1) < 1e-4
    assert Image.open(seen).size == (224, 224)                       # 16×16 enlarged ×14, nearest
    for api in ("/attribute", "/attribute_class"):
        fig = client.predict("tiny-joint", handle_file(str(images["vbar"])), "hbar", api_name=api)
        assert fig["type"] == "matplotlib" and fig["plot"].startswith("data:image")
    curves = client.predict("tiny-joint", handle_file(str(images["vbar"])), api_name="/robustness")
    assert curves["columns"] == ["noise level t", "probability", "class"]
    drawn = [row for row in curves["data"] if row[1] is not None]
    pad = [row for row in curves["data"] if row[1] is None]         # first: every series, in one fixed order
    assert curves["data"][:len(pad)] == pad and {r[2] for r in pad[:3]} == {"square", "vbar", "hbar"}
    assert [r[2] for r in pad[3:]] == ["all others", "frame on screen"]
    assert {row[2] for row in drawn} == {"square", "vbar", "hbar"} and len(drawn) == 21 * 3


def test_denoise_scrub_gif_per_session(app_url, images):
    """Two clients (two browser sessions) denoise with different seeds; each scrubs its own trajectory."""
    a, b = (client_mod.Client(app_url, verbose=False, ssl_verify=False) for _ in range(2))
    ra = a.predict("tiny-joint", handle_file(str(images["vbar"])), "pure noise", 50, "ddim", 10, "no guidance", 0, 1,
                   api_name="/denoise")
    rb = b.predict("tiny-joint", handle_file(str(images["vbar"])), "my image, noised to t*", 30, "ddpm", 5, "hbar", 4,
                   2, api_name="/denoise")
    assert "t = 0" in ra[2] and ra[3]["maximum"] == 10 and rb[3]["maximum"] == 5   # caption; slider range
    plot = rb[4]                                   # a native line plot: p(y | x_t, t) per frame, and the rule
    frame_col, prob_col, class_col = plot["columns"]
    rows = [dict(zip(plot["columns"], r)) for r in plot["data"] if r[1] is not None]   # not the empty pad rows
    assert plot["mark"] == "line" and prob_col == "probability" and class_col == "class"
    assert {r[frame_col] for r in rows if r["class"] != "frame on screen"} == set(range(6))      # 5 steps + the end
    assert sorted(r[frame_col] for r in rows if r["class"] == "frame on screen") == [5, 5]      # the last frame
    xa, _, cap_a = a.predict(0, api_name="/scrub")
    xb, _, cap_b = b.predict(0, api_name="/scrub")
    assert "t = 50" in cap_a and "t = 30" in cap_b                    # each session's own start time
    final_a = np.asarray(Image.open(ra[0]))
    assert np.array_equal(np.asarray(Image.open(a.predict(10, api_name="/scrub")[0])), final_a)
    gif = Image.open(a.predict(api_name="/gif"))
    assert gif.format == "GIF" and gif.n_frames == 11


def test_scrub_before_any_run_says_so(app_url):
    fresh = client_mod.Client(app_url, verbose=False, ssl_verify=False)
    with pytest.raises(AppError, match="Run a denoising first"):
        fresh.predict(3, api_name="/scrub")


def test_gradients_and_forward(client, images):
    x_t, x0, eps_fig, score_fig, summary = client.predict("tiny-joint", handle_file(str(images["square"])), 20,
                                                          "predicted class", 4, 0, api_name="/gradients")
    assert "t = 20" in summary and eps_fig["type"] == score_fig["type"] == "matplotlib"
    x_t, strip, curves = client.predict("tiny-joint", handle_file(str(images["square"])), 25, 0, api_name="/forward")
    assert Image.open(strip).width > Image.open(x_t).width and curves["type"] == "matplotlib"


def test_counterfactual_moves_toward_target(client, images):
    pair, diff, bars, strip, summary = client.predict("tiny-joint", handle_file(str(images["square"])), 40, 30, 0,
                                                      0, 0, 1, api_name="/counterfactual")
    before, after = (Image.open(p) for p in pair)
    assert before.size == after.size and "→" in summary
    # the difference map and the bars are pictures drawn with PIL (each a few ms, not a matplotlib figure)
    assert Image.open(diff).size[0] > 224 and Image.open(bars).size[0] >= 500
    # no weight set (how the page opens): toward the classifier's runner-up, said in words; negative: refused
    # (by the slider's own bounds before the handler's check, which tests/test_counterfactual.py calls directly)
    *_, summary = client.predict("tiny-joint", handle_file(str(images["square"])), 40, 30, 0, 0, 0, 0,
                                 api_name="/counterfactual")
    assert "second choice" in summary
    with pytest.raises(AppError, match="less than minimum"):
        client.predict("tiny-joint", handle_file(str(images["square"])), 40, 30, 0, 0, -1, 0, api_name="/counterfactual")


def test_diffusion_only_model_explains_what_it_cannot_do(client, images):
    assert "no classifier" in client.predict("tiny-ddpm", api_name="/model_info")
    with pytest.raises(AppError, match="no classifier"):
        client.predict("tiny-ddpm", handle_file(str(images["square"])), api_name="/predict")
    r = client.predict("tiny-ddpm", handle_file(str(images["square"])), "pure noise", 50, "ddim", 5, "no guidance", 0,
                       0, api_name="/denoise")
    assert r[4] is None                                               # no classifier: no probability plot
    # The Counterfactual tab's first visit presses its button: the reason goes into the summary, not a red error.
    *pictures, summary = client.predict("tiny-ddpm", handle_file(str(images["square"])), 40, 30, 0, 1,
                                        api_name="/counterfactual")
    assert pictures == [None] * 4 and "no classifier" in summary


def test_toy_playground(client):
    for name in ("moons", "gmm", "spirals"):
        assert client.predict(name, 30, api_name="/toy_field")["type"] == "matplotlib"
        assert client.predict(name, 30, api_name="/toy_cdm_field")["type"] == "matplotlib"
    assert client.predict("moons", api_name="/toy_reverse")["type"] == "matplotlib"
    fig = client.predict("moons", -0.5, 0.3, "lower moon", 40, 3, 0, api_name="/toy_counterfactual")
    assert fig["type"] == "matplotlib"
    # Picking a data set offers its classes as targets, the default being the start point's runner-up class
    # (the classifier puts (−0.5, 0.3) in the upper moon and the spirals' arm B).
    assert client.predict("moons", -0.5, 0.3, api_name="/toy_classes")["value"] == "lower moon"
    assert client.predict("spirals", -0.5, 0.3, api_name="/toy_classes")["value"] == "arm A"


def test_noise_level_view(client, images):
    x_t, x0_cdm, x0_ddm, levels, grad, bpd, summary = client.predict(
        "tiny-ddpm", handle_file(str(images["vbar"])), "tiny-cdm", 20, 0, api_name="/noise_level")
    assert "True t = 20" in summary and "bits/dim" in summary and "tiny-ddpm" in summary
    assert Image.open(x0_cdm).size == Image.open(x0_ddm).size == Image.open(x_t).size
    assert levels["type"] == grad["type"] == bpd["type"] == "matplotlib"
    with pytest.raises(AppError, match="not in the list of choices"):   # Gradio checks the CDM picker
        client.predict("tiny-ddpm", handle_file(str(images["vbar"])), "tiny-joint", 20, 0, api_name="/noise_level")
    with pytest.raises(AppError, match="not an image|No image"):
        client.predict("tiny-ddpm", handle_file(str(images["text"])), "tiny-cdm", 20, 0, api_name="/noise_level")


def test_representations_view(client, images):
    maps, pca, summary = client.predict("tiny-joint", handle_file(str(images["hbar"])), "mid", 10, 0,
                                        api_name="/representations")
    assert Image.open(maps).mode == "RGB" and pca["type"] == "matplotlib"     # the maps: one mosaic PNG
    assert "Block **mid**, t = 10" in summary and "test images nearest to yours" in summary


def test_auxiliary_variables_view(client, images):
    phase, mats, summary = client.predict("moons", 0.4, 0, api_name="/aux_particles")
    assert phase["type"] == mats["type"] == "matplotlib"
    assert all(f"{d} (K={k})" in summary for d, k in (("vpsde", 1), ("cld", 2), ("learned", 2)))
    fwd, rev, text = client.predict(handle_file(str(images["square"])), "tiny-mdm", 0, api_name="/aux_image")
    assert all(Image.open(p).size[0] > 300 for p in (fwd, rev))          # PIL mosaics: times × variables
    assert "tiny-mdm" in text and "cld, K = 2" in text
    # the reverse sample depends on the model and seed only: another picture reuses it (cached), no picture too
    _, rev2, _ = client.predict(handle_file(str(images["hbar"])), "tiny-mdm", 0, api_name="/aux_image")
    _, rev3, _ = client.predict(handle_file(str(images["hbar"])), "tiny-mdm", 1, api_name="/aux_image")
    assert np.array_equal(np.asarray(Image.open(rev)), np.asarray(Image.open(rev2)))
    assert not np.array_equal(np.asarray(Image.open(rev)), np.asarray(Image.open(rev3)))
    with pytest.raises(AppError, match="not in the list of choices"):   # only image MDMs can be picked
        client.predict(handle_file(str(images["square"])), "tiny-joint", 0, api_name="/aux_image")


def test_example_and_drawing(client, tmp_path):
    path = client.predict("7-sneaker-0.png", api_name="/example")
    assert Image.open(path).size == (28, 28)
    with pytest.raises(AppError, match="no example"):
        client.predict("nope.png", api_name="/example")
    stroke = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    stroke.paste((0, 0, 0, 255), (120, 30, 160, 250))                 # a dark bar drawn on the canvas
    stroke.save(tmp_path / "sketch.png")
    sketch = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "sketch.png")), "id": None}
    drawn = Image.open(client.predict(sketch, api_name="/use_drawing"))
    a = np.asarray(drawn.convert("L"))
    assert a[140, 140] < 50 and a[5, 5] > 200                          # dark stroke on white


def test_a_drawing_along_the_canvas_edge_keeps_its_whole_shape():
    """The preparation reads the background from the border: a block drawn up to the canvas's top edge came out
    as a 160×48 strip (the border half black); the drawing's white margin keeps all 160×200 of it."""
    from jdx.photo import fashion_mnist_view
    from jdx.ui.layout import use_drawing
    stroke = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    stroke.paste((0, 0, 0, 255), (60, 0, 220, 200))                   # from the top edge down
    crop = fashion_mnist_view(use_drawing({"composite": stroke})).crop
    assert (crop[2] - crop[0], crop[3] - crop[1]) == (160, 200)


@pytest.mark.parametrize("kind", ["rgba", "16bit", "animated"])
def test_unusual_images_work(client, images, kind):
    label, *_ = client.predict("tiny-joint", handle_file(str(images[kind])), api_name="/predict")
    assert label["label"] in {"square", "vbar", "hbar"}


@pytest.mark.parametrize("kind, message", [("text", "not .*image"), ("empty", "not .*image"),
                                           ("truncated", "not .*image|truncated"), ("one", "too small"),
                                           ("huge", "too large")])
def test_bad_uploads_get_a_clear_message_and_the_app_keeps_serving(client, images, kind, message):
    with pytest.raises(AppError, match=message):
        client.predict("tiny-joint", handle_file(str(images[kind])), api_name="/predict")
    label, *_ = client.predict("tiny-joint", handle_file(str(images["hbar"])), api_name="/predict")
    assert label["label"] in {"square", "vbar", "hbar"}


def test_uploads_are_size_limited(client, images):
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict("tiny-joint", handle_file(str(images["big"])), api_name="/predict")


def test_only_checkpoints_in_the_folder_can_be_picked(client, images):
    with pytest.raises(AppError, match="not in the list of choices"):      # Gradio's own check …
        client.predict("../checkpoints/fmnist-joint", handle_file(str(images["hbar"])), api_name="/predict")
    from jdx.ui import models                                                # … and ours behind it
    for name in ("../checkpoints/fmnist-joint", "/etc/passwd", "missing"):
        with pytest.raises(gr.Error, match="no checkpoint"):
            models.get(name)


def test_many_clients_get_the_answers_they_get_alone(app_url, images):
    """16 clients at once, each predict + counterfactual on its own image, target and seed: results equal the
    sequential ones (no cross-talk between requests), though concurrent predictions and counterfactuals share
    model passes."""
    from jdx.ui import batches
    jobs = [(images[("square", "vbar", "hbar")[i % 3]], i % 3, i) for i in range(16)]

    # generous timeouts: on a loaded CI machine 16 clients' uploads can wait longer than httpx's default 5 s
    clients = [client_mod.Client(app_url, verbose=False, ssl_verify=False, httpx_kwargs={"timeout": 300}) for _ in jobs]

    def run(job):
        path, k, seed = job
        c = clients[seed]
        label, *_ = c.predict("tiny-joint", handle_file(str(path)), api_name="/predict")
        w = [0, 0, 0]
        w[(k + 1) % 3] = 1
        cf = c.predict("tiny-joint", handle_file(str(path)), 30, 20, seed, *w, api_name="/counterfactual")
        return label, np.asarray(Image.open(cf[0][1])).astype(int), cf[4]

    alone = [run(j) for j in jobs]
    sizes = len(batches._COUNTERFACTUALS.batch_sizes)
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(run, jobs))
    assert max(batches._COUNTERFACTUALS.batch_sizes[sizes:]) > 1          # they did share passes
    for (l1, img1, s1), (l2, img2, s2) in zip(alone, together):
        # A shared pass gives the same numbers up to float rounding (a batched convolution sums in another
        # order): the same labels and classes, pictures within one grey level.
        assert l1["label"] == l2["label"]
        p1, p2 = ({c["label"]: c["confidence"] for c in lab["confidences"]} for lab in (l1, l2))
        assert p1.keys() == p2.keys() and all(abs(p1[k] - p2[k]) < 1e-5 for k in p1)
        assert re.findall(r"\*\*(.+?)\*\*", s1) == re.findall(r"\*\*(.+?)\*\*", s2)    # before → after classes
        assert np.abs(img1 - img2).max() <= 1


def test_counterfactual_batch_rows_equal_requests_alone(tiny_joint):
    """The shared pass itself: each row with its own image, target and seed equals the request alone, and
    every waiting request's progress callback hears every step."""
    import torch
    from jdx.counterfactual import counterfactual
    from jdx.ui import batches, models
    old = models.CHECKPOINT_DIR
    models.CHECKPOINT_DIR = tiny_joint.parent
    try:
        name = tiny_joint.name
        model = models.get(name)
        c = model.unet.config
        x = torch.rand(6, c.in_channels, c.image_size, c.image_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
        targets = torch.eye(3)[[1, 2, 0, 1, 2, 0]]
        opts = dict(t_star=30, scale=20.0, steps=5, record=True)
        alone = [counterfactual(model, x[i:i + 1], targets[i], seed=i, **opts) for i in range(6)]
        heard = [[] for _ in range(6)]
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda i: batches.counterfactual(name, x[i:i + 1], targets[i], seed=i,
                                                                 callback=lambda s: heard[i].append(s.t), **opts),
                                range(6)))
        for a, b, h in zip(alone, got, heard):
            assert b.x_cf.shape == a.x_cf.shape and len(b.steps) == len(a.steps) == 5 == len(h)
            assert torch.allclose(a.x_cf, b.x_cf, atol=1e-4) and torch.equal(a.x, b.x)
            assert torch.allclose(a.probs_after, b.probs_after, atol=1e-5)
            assert torch.allclose(a.steps[2].x0_hat, b.steps[2].x0_hat, atol=1e-4)
    finally:
        models.CHECKPOINT_DIR = old


def test_denoise_batch_rows_equal_requests_alone(tiny_joint):
    """Concurrent Denoise requests share U-Net passes (batches.denoiser), each with its own seed, sampler,
    start and guidance: every answer is the answer alone, and every request's progress bar hears its own steps (the
    first, the last and at most one every 0.15 s between). "The answer alone" up to float rounding: a batched convolution sums in another order (ε̂ differs by
    ~1e-6 between a batch of 1 and of 30 on this CPU), so a pixel that sits on a rounding edge can come out one
    grey level apart; the caption (t, class, %) and the probabilities to 1e-4 are the same."""
    from jdx.ui import batches, denoise, models
    old = models.CHECKPOINT_DIR
    models.CHECKPOINT_DIR = tiny_joint.parent
    name = tiny_joint.name
    jobs = [("pure noise", "ddim", "no guidance", 0), ("pure noise", "ddpm", "no guidance", 1),
            ("pure noise", "ddim", "hbar", 2), ("pure noise", "ddpm", "vbar", 3), ("pure noise", "ddim", "no guidance", 4),
            ("pure noise", "ddim", "square", 5)]

    def run(job, heard=None):
        start, sampler, guide, seed = job
        progress = (lambda p, desc="": heard.append(p[0])) if heard is not None else (lambda *a, **k: None)
        *_, last = denoise.denoise(name, None, start, 40, sampler, 8, guide, 4.0, seed, progress=progress)
        return last
    try:
        alone = [run(j) for j in jobs]
        n = len(batches._EPS.batch_sizes)
        heard = [[] for _ in jobs]
        with ThreadPoolExecutor(len(jobs)) as pool:
            together = list(pool.map(lambda i: run(jobs[i], heard[i]), range(len(jobs))))
        assert max(batches._EPS.batch_sizes[n:]) > 1                      # they did share passes
        for a, b, h in zip(alone, together, heard):
            assert h[0] == 1 and h[-1] == 8 and h == sorted(set(h))      # its own steps, in order, first and last
            for u, v in ((np.asarray(a[0]), np.asarray(b[0])), (a[3]["x_t"], b[3]["x_t"]), (a[3]["x0"], b[3]["x0"])):
                assert u.shape == v.shape and np.abs(u.astype(int) - v.astype(int)).max() <= 1   # 8-bit frames
            assert np.abs(a[3]["probs"] - b[3]["probs"]).max() < 1e-4
            assert a[2] == b[2]                                           # the caption: t, class and %
        # the seeds differ, so the answers do too (no request got another's rows)
        assert len({np.asarray(r[0]).tobytes() for r in together}) == len(jobs)
    finally:
        models.CHECKPOINT_DIR = old


def test_an_answer_whose_input_changed_while_it_ran_is_dropped():
    """The Predict view's follow-ups (attributions, curves) for a picture the user has since replaced must not
    land: `Latest.only_current` turns them into 'no update', per browser session."""
    import gradio as gr
    from types import SimpleNamespace
    from jdx.ui.errors import Latest

    latest = Latest()
    alice, bob = SimpleNamespace(session_hash="alice"), SimpleNamespace(session_hash="bob")

    def slow(x, changes_meanwhile=None):
        if changes_meanwhile is not None:
            latest.changed(changes_meanwhile)        # the user picks another picture while this runs
        return x * 2

    f = latest.only_current(slow)
    latest.changed(alice)
    assert f(3, _jdx_request=alice) == 6                                 # nothing changed: the answer lands
    assert isinstance(f(3, alice, _jdx_request=alice), type(gr.skip()))  # alice changed her picture: dropped
    assert f(3, bob, _jdx_request=alice) == 6                            # another session's change: lands
    assert f(4) == 8                                                     # no request (a direct call): lands


def test_a_class_plot_keeps_one_colour_domain_and_gets_its_legend_apart():
    """Every class table starts with one empty row per possible series in one order (the browser's colour
    domain never changes, so a new picture's lines get their own colours), and the legend is a separate update
    naming only the series drawn (sent with a new table, Gradio rebuilt the chart on the old rows)."""
    import gradio as gr
    from jdx.ui import native
    names = ["square", "vbar", "hbar"]
    plot = gr.LinePlot(x="noise level t", y="probability", color="class")
    for probs in (np.array([[0.9, 0.1, 0.0], [0.5, 0.3, 0.2]]), np.array([[0.0, 0.2, 0.8], [0.1, 0.1, 0.8]])):
        table = native.padded(native.class_curves([0, 100], probs, names, top=2), names)
        assert list(table["class"][:5]) == names + [native.OTHERS, native.MARK]
        assert table["probability"][:5].isna().all()
        update = native.legend(plot.postprocess(table))
        assert update["color_map"] == native.colours(names)
        top2 = [names[k] for k in np.argsort(-probs.max(0))[:2]]
        assert update["colors_in_legend"] == top2 + [native.OTHERS]
