import os
import subprocess
import sys

import pytest
import torch

import jdx
from jdx.cli import main
from jdx.train import EMA, labelled_indices
from conftest import TINY


def test_tiny_joint_checkpoint_records_its_training(tiny_joint):
    m = jdx.load(tiny_joint)
    t = m.info.training
    assert t["command"].startswith("jdx train joint") and t["steps"] == 10 and t["wall_time_s"] > 0
    assert m.info.class_names == ["hbar", "square", "vbar"]
    assert "test_accuracy" in m.info.metrics and "test_diffusion_loss" in m.info.metrics


def test_joint_training_learns_the_shapes(tmp_path, shapes_dir):
    """60 steps on three easy shapes: the shared classifier must beat chance (1/3) by far."""
    out = tmp_path / "j"
    assert main(["train", "joint", "--data", str(shapes_dir), "--out", str(out), "--steps", "60", "--lam", "1",
                 "--lr", "2e-3", "--warmup", "5", "--eval-every", "60"] + TINY[:-5] + ["--eval-n", "64", "--quiet"]) == 0
    assert jdx.load(out).info.metrics["test_accuracy"] >= 0.8


def test_resume_continues_where_it_stopped(tmp_path, shapes_dir):
    out = tmp_path / "r"
    args = ["train", "ddpm", "--data", str(shapes_dir), "--out", str(out)] + TINY
    assert main(args + ["--steps", "4"]) == 0
    assert main(args + ["--steps", "7", "--resume"]) == 0
    t = jdx.load(out).info.training
    assert t["steps"] == 7 and len(t["commands"]) == 2 and t["commands"][1].endswith("--resume")
    assert main(["train", "ddpm", "--data", str(shapes_dir), "--out", str(tmp_path / "none"), "--resume"] + TINY) == 2


def test_seeded_training_is_deterministic(tmp_path, shapes_dir):
    for name in ("a", "b"):
        assert main(["train", "joint", "--data", str(shapes_dir), "--out", str(tmp_path / name), "--steps", "3"] + TINY) == 0
    a, b = jdx.load(tmp_path / "a"), jdx.load(tmp_path / "b")
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_labels_per_class():
    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)
    idx = labelled_indices(labels, 3, seed=0)
    assert torch.bincount(labels[idx]).tolist() == [3, 3, 3]
    assert torch.equal(idx, labelled_indices(labels, 3, seed=0))
    assert len(labelled_indices(labels, 0, 0)) == 30


def test_semi_supervised_run(tmp_path, shapes_dir):
    assert main(["train", "joint", "--data", str(shapes_dir), "--out", str(tmp_path / "s"), "--steps", "3",
                 "--labels-per-class", "2"] + TINY) == 0


def test_ema_tracks_weights():
    m = torch.nn.Linear(2, 2)
    ema = EMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m, step=1000)
    torch.testing.assert_close(ema.model.weight, m.weight - 0.5)


def test_torchrun_two_cpu_processes(tmp_path, shapes_dir):
    """DistributedDataParallel with gloo: two processes train one model and rank 0 saves it."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "jdx",
           "train", "joint", "--data", str(shapes_dir), "--out", str(out), "--steps", "3", "--device", "cpu"] + TINY
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    t = jdx.load(out).info.training
    assert t["processes"] == 2 and t["steps"] == 3


def test_lr_minutes_anneals_over_wall_time():
    from jdx.train import TrainConfig, lr_at
    cfg = TrainConfig(lr=1e-3, warmup=10, steps=100_000, lr_minutes=2.0)
    assert lr_at(cfg, 5, 0.0) == pytest.approx(1e-3 * 6 / 10)          # warm-up is still by steps
    assert lr_at(cfg, 20, 0.0) == pytest.approx(1e-3, rel=1e-3)         # far from the step budget: full lr
    assert lr_at(cfg, 20, 60.0) == pytest.approx(1e-3 * 0.55)           # half the time: half-way down the cosine
    assert lr_at(cfg, 20, 600.0) == pytest.approx(1e-4)                 # past the time box: the 10 % floor
    assert lr_at(TrainConfig(lr=1e-3, warmup=10, steps=110), 110, 600.0) == pytest.approx(1e-4)  # steps still count


def test_domain_shifts_and_split():
    from jdx.domains import shift_images, split_domains
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.uint8).view(2, 1, 3, 3)
    assert torch.equal(shift_images(x, "invert"), 255 - x)
    assert torch.equal(shift_images(shift_images(x, "rotate"), "rotate"), torch.flip(x, dims=(-2, -1)))
    with pytest.raises(ValueError, match="unknown domain shift"):
        shift_images(x, "blur")
    source, target = split_domains(101, seed=0)
    assert len(set(source.tolist()) & set(target.tolist())) == 0 and len(source) + len(target) == 101


def test_diffusion_weight_zero_is_a_plain_classifier_of_the_same_encoder(tiny_joint):
    from jdx.joint import JointObjective
    model = jdx.load(tiny_joint).train()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    y = torch.tensor([0, 1, 2, 0])
    torch.manual_seed(0)
    out = JointObjective(model, lam=1.0, w=0.0)(x, x, y)
    assert out.diffusion == 0 and torch.isclose(out.loss, out.ce)
    out.loss.backward()
    # no gradient reaches the decoder: only the encoder and the head were used
    assert all(p.grad is None for n, p in model.unet.named_parameters() if n.startswith(("up.", "out.")))
    assert any(p.grad is not None for n, p in model.unet.named_parameters() if n.startswith("down."))


def test_joint_starts_from_a_diffusion_only_unet_and_trains_under_a_shift(tmp_path, shapes_dir):
    ddpm = tmp_path / "d"
    assert main(["train", "ddpm", "--data", str(shapes_dir), "--out", str(ddpm), "--steps", "2"] + TINY) == 0
    out = tmp_path / "j"
    assert main(["train", "joint", "--data", str(shapes_dir), "--out", str(out), "--steps", "2", "--init", str(ddpm),
                 "--shift", "invert", "--labels-per-class", "2"] + TINY) == 0
    m, d = jdx.load(out), jdx.load(ddpm)
    assert "target_accuracy" in m.info.metrics and m.info.training["history"][0]["init"] == str(ddpm)
    # a classifier checkpoint is not a U-Net: refused with the reason
    clf = tmp_path / "c"
    assert main(["train", "classifier", "--data", str(shapes_dir), "--out", str(clf), "--steps", "1",
                 "--image-size", "16", "--batch-size", "8", "--eval-n", "8", "--quiet"]) == 0
    assert main(["train", "joint", "--data", str(shapes_dir), "--out", str(tmp_path / "x"), "--steps", "1",
                 "--init", str(clf)] + TINY) == 2
    assert d.kind == "ddpm"
