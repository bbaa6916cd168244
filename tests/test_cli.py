import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jdx
from jdx import checkpoint
from jdx.cli import main
from jdx.protocols import Classifier, supports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def images(tmp_path, shapes_dir):
    a = shapes_dir / "square" / "0.png"
    b = tmp_path / "photo.jpg"                                  # RGB, non-square, light background
    Image.new("RGB", (60, 40), (245, 245, 245)).save(b)
    return [str(a), str(b)]


def test_help_and_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "jdx", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "counterfactual" in r.stdout
    for cmd in ("train", "eval", "sample", "predict", "counterfactual", "trajectory"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0


def test_eval_json(tiny_joint, tiny_classifier, capsys):
    assert main(["eval", str(tiny_joint), "--json", "--fid-samples", "20", "--steps", "3", "--cf-n", "4",
                 "--cf-steps", "2", "--cf-noise", "20", "--feature-classifier", str(tiny_classifier), "--write"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("test_accuracy", "fid", "fid_floor_train_vs_test", "guided_accuracy", "cf_flip_joint",
                "cf_flip_separate", "cf_mean_l1", "accuracy_vs_t"):
        assert key in r, key
    assert 0 <= r["test_accuracy"] <= 1 and r["fid"] >= 0
    assert jdx.load(tiny_joint).info.metrics["fid"] == r["fid"]


def test_sample_png_and_npz(tiny_joint, tmp_path):
    assert main(["sample", str(tiny_joint), "--n", "4", "--steps", "3", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 16
    assert main(["sample", str(tiny_joint), "--n", "3", "--class", "vbar", "--steps", "3", "--guidance", "2",
                 "--out", str(tmp_path / "s.npz")]) == 0
    z = np.load(tmp_path / "s.npz")
    assert z["images"].shape == (3, 16, 16, 1) and z["images"].dtype == np.uint8 and list(z["labels"]) == [2, 2, 2]
    assert main(["sample", str(tiny_joint), "--n", "2", "--weights", "1,1,0", "--steps", "2", "--sampler", "ddpm",
                 "--out", str(tmp_path / "m.npz")]) == 0


def test_sample_is_seeded(tiny_joint, tmp_path):
    for name in ("a", "b"):
        assert main(["sample", str(tiny_joint), "--n", "2", "--steps", "3", "--seed", "5", "--out", str(tmp_path / f"{name}.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "a.npz")["images"], np.load(tmp_path / "b.npz")["images"])


def test_predict_json(tiny_joint, images, capsys):
    assert main(["predict", str(tiny_joint), *images, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["image"] for r in rows] == images
    for r in rows:
        assert r["label"] in ("hbar", "square", "vbar") and len(r["probs"]) == 3
        assert abs(sum(r["probs"]) - 1) < 1e-4 and r["probs"][r["index"]] == max(r["probs"])
    assert main(["predict", str(tiny_joint), images[0], "--t", "20"]) == 0


def test_counterfactual_writes_same_size_and_mode(tiny_joint, images, tmp_path):
    out = tmp_path / "cf"
    assert main(["counterfactual", str(tiny_joint), *images, "--target", "vbar", "--noise", "20", "--steps", "3",
                 "--out", str(out)]) == 0
    for src in images:
        res = Image.open(out / f"{Path(src).stem}.png")
        orig = Image.open(src)
        assert res.size == orig.size and res.mode == orig.mode
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["target"] == "vbar" and r["l1"] >= 0 and len(r["probs_after"]) == 3 for r in rows)


def test_trajectory_gif_and_png(tiny_joint, images, tmp_path):
    assert main(["trajectory", str(tiny_joint), "--steps", "4", "--out", str(tmp_path / "t.gif")]) == 0
    gif = Image.open(tmp_path / "t.gif")
    assert gif.n_frames == 5
    assert main(["trajectory", str(tiny_joint), images[0], "--noise", "30", "--steps", "3", "--class", "0",
                 "--out", str(tmp_path / "t.png")]) == 0


@pytest.mark.parametrize("argv,message", [
    (["predict", "missing-ckpt", "x.png"], "missing-ckpt.json"),
    (["sample", "{ck}", "--class", "giraffe", "--out", "{tmp}/x.png"], "unknown class 'giraffe'"),
    (["sample", "{ck}", "--weights", "1,2", "--out", "{tmp}/x.png"], "--weights needs 3"),
    (["sample", "{ck}", "--out", "{tmp}/x.txt", "--steps", "1", "--n", "1"], "must end in .png or .npz"),
    (["predict", "{ck}", "{tmp}/nothing.png"], "not a readable image"),
    (["counterfactual", "{ck}", "{img}", "--target", "1", "--noise", "999", "--out", "{tmp}/o"], "t* must be in"),
])
def test_errors_exit_2_with_a_message(tiny_joint, images, tmp_path, capsys, argv, message):
    argv = [a.format(ck=tiny_joint, tmp=tmp_path, img=images[0]) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_ddpm_has_no_classifier(tmp_path, shapes_dir, capsys):
    from conftest import TINY
    assert main(["train", "ddpm", "--data", str(shapes_dir), "--out", str(tmp_path / "d"), "--steps", "2"] + TINY) == 0
    assert main(["predict", str(tmp_path / "d"), str(shapes_dir / "square" / "0.png")]) == 2
    assert main(["sample", str(tmp_path / "d"), "--class", "0", "--out", str(tmp_path / "x.png"), "--steps", "1"]) == 2
    assert "needs a joint model" in capsys.readouterr().err


def test_closed_pipe_ends_quietly():
    """`jdx predict … | head -1`: the reader leaves early; no BrokenPipeError traceback, exit 141 like Unix tools."""
    examples = sorted(str(p) for p in (ROOT / "assets" / "examples").glob("*.png"))
    p = subprocess.Popen([sys.executable, "-m", "jdx", "predict", str(ROOT / "checkpoints" / "fmnist-joint"), *examples,
                          "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.close()                                           # deterministic: every write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait() == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_cpu_threads_degrade_under_load_and_obey_overrides(monkeypatch):
    from jdx import device
    monkeypatch.delenv("JDX_THREADS", raising=False)
    monkeypatch.setattr(device, "usable_cores", lambda: 8)
    monkeypatch.setattr(device.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert device.cpu_threads() == 8                           # an idle machine: every core
    monkeypatch.setattr(device.os, "getloadavg", lambda: (3.0, 0.0, 0.0))
    assert device.cpu_threads() == 5                           # three cores busy elsewhere
    monkeypatch.setattr(device.os, "getloadavg", lambda: (30.0, 0.0, 0.0))
    assert device.cpu_threads() == 1                           # never fewer than one
    assert device.cpu_threads(3) == 3                          # --threads
    monkeypatch.setenv("JDX_THREADS", "2")
    assert device.cpu_threads() == 2 and device.cpu_threads(4) == 4
    with pytest.raises(ValueError, match="at least 1"):
        device.cpu_threads(0)


def test_threads_flag_applies_during_the_command_only(tiny_joint, tmp_path, monkeypatch):
    import importlib

    import torch
    gen = importlib.import_module("jdx.generate")
    seen = []

    def fake(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return gen.Generation(torch.zeros(1, 1, 16, 16), [])
    monkeypatch.setattr(gen, "generate", fake)
    before = torch.get_num_threads()
    assert main(["sample", str(tiny_joint), "--n", "1", "--threads", "1", "--out", str(tmp_path / "s.png")]) == 0
    assert seen == [1] and torch.get_num_threads() == before


def test_multivariate_diffusion_samplers_are_named_not_remapped(tmp_path, capsys):
    """--sampler ddim used to become the flow ODE on an MDM without a word; now it is an error that says why."""
    out = str(tmp_path / "s.png")
    assert main(["sample", str(ROOT / "checkpoints" / "fmnist-mdm-vpsde"), "--sampler", "ddim", "--out", out]) == 2
    assert "em (default) or ode" in capsys.readouterr().err
    assert main(["sample", str(ROOT / "checkpoints" / "fmnist-ddpm"), "--sampler", "ode", "--out", out]) == 2


@pytest.mark.parametrize("name,argv,per_step", [
    ("fmnist-ddpm", ["--sampler", "ddim"], 1),
    ("fmnist-ddpm", ["--sampler", "ddpm"], 1),
    ("fmnist-cdm", [], 1),                                  # ε̂ from ∇ₓF: one forward (and one backward) pass
    ("fmnist-joint", [], 1),
    ("fmnist-joint", ["--class", "7"], 2),                  # guided: ε̂, and ∇ log p(y|x_t) from an encoder pass
    ("fmnist-mdm-vpsde", ["--sampler", "em"], 1),
    ("fmnist-mdm-vpsde", ["--sampler", "ode"], 2),          # Heun: two evaluations per step
])
@pytest.mark.parametrize("command", ["sample", "trajectory"])
def test_steps_means_reverse_steps_for_every_family(name, argv, per_step, command, monkeypatch, tmp_path):
    """--steps N is N reverse steps for every model family; each step costs `per_step` network passes, as
    `jdx sample --help` says."""
    import jdx.cli
    calls = []

    def counting_load(path, device, verify=True):
        model = checkpoint.load(path, device, verify)
        net = model.net if hasattr(model, "net") else model.unet          # the network proper
        net.register_forward_hook(lambda *_: calls.append("network"))
        if supports(model, Classifier):                                    # guidance's ∇ log p(y | x_t)
            classify = model.classify
            model.classify = lambda *a, **k: calls.append("classifier") or classify(*a, **k)
        return model
    monkeypatch.setattr(jdx.cli, "load_model", counting_load)
    out = tmp_path / ("s.png" if command == "sample" else "t.png")
    n = ["--n", "1"] if command == "sample" else []
    code = main([command, str(ROOT / "checkpoints" / name), *n, "--steps", "4", "--out", str(out), *argv])
    if command == "trajectory" and name.startswith("fmnist-mdm"):
        assert code == 2 and not calls        # no discrete-time trajectory: refused with a message, not a traceback
        return
    assert code == 0 and len(calls) == 4 * per_step
