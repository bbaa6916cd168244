"""The out-of-distribution score: its components, the unfamiliar sets, calibration from training images,
`jdx predict --json` fields, the Predict view's warning — and, on the shipped checkpoints, that the
combined score separates test images from generated unfamiliar inputs where raw likelihood does not."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import jdx
from jdx.cli import main
from jdx.likelihood import auroc, block_noise, constants, digits, object_photos, sketches, unfamiliar_sets
from jdx.ood import (Calibration, Detector, FeatureGaussians, calibrate, calibration_path, combine, components,
                     png_bits_per_dim, pooled_features)

from conftest import TINY, shape_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_joint, shapes_dir):
    """A folder with the tiny joint model, a tiny CDM, and a calibration NAME.ood.json beside the joint."""
    folder = tmp_path_factory.mktemp("ood-ck")
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_joint.with_suffix(suffix), folder / f"tiny-joint{suffix}")
    assert main(["train", "cdm", "--data", str(shapes_dir), "--out", str(folder / "tiny-cdm"), "--steps", "3"]
                + TINY) == 0
    model, cdm = jdx.load(folder / "tiny-joint").eval(), jdx.load(folder / "tiny-cdm").eval()
    rng = np.random.default_rng(0)
    shapes = torch.from_numpy(np.stack([shape_image(i % 3, rng) for i in range(100)]))[:, None].float() / 127.5 - 1
    x, x_fit = shapes[:40], shapes[40:]                   # calibrate on other images than the Gaussians' fit
    gaussians = FeatureGaussians.fit(pooled_features(model, x_fit), torch.arange(40, 100) % 3, 3)
    gaussians.save(folder / "tiny-joint.features.safetensors")
    cal = calibrate(model, cdm, x, str(folder / "tiny-joint"), str(folder / "tiny-cdm"), gaussians=gaussians,
                    features=str(folder / "tiny-joint.features.safetensors"))
    cal.save(folder / "tiny-joint.ood.json")
    return folder, model, cdm, x, cal


def test_feature_gaussians_measure_mahalanobis_distance():
    g = FeatureGaussians(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.diag(torch.tensor([1.0, 4.0])))
    d = g.distance(torch.tensor([[1.0, 1.0], [9.0, 0.0]]))
    assert torch.allclose(d, torch.tensor([5.0, 1.0]))                  # 1² + 4·1², then the nearer class: 1²


def test_png_code_length_orders_simple_below_complex():
    flat, noise = constants(3, 16), block_noise(3, 16, block=1)
    assert (png_bits_per_dim(flat) < 3).all() and (png_bits_per_dim(noise) > png_bits_per_dim(flat) + 5).all()


def test_unfamiliar_sets_are_on_the_grid_and_shaped_like_the_data():
    test = torch.full((8, 1, 28, 28), -1.0)
    for name, x in unfamiliar_sets(test, 5).items():
        assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1, name
        assert torch.allclose((x + 1) * 127.5, ((x + 1) * 127.5).round(), atol=1e-3), name
    assert digits(10).std(dim=(1, 2, 3)).min() > 0.1 and sketches(4).amax(dim=(1, 2, 3)).min() > 0
    assert object_photos(5).shape == (5, 1, 28, 28)
    blocks = block_noise(2, 16, block=4)
    assert torch.equal(blocks[:, :, 0, 0], blocks[:, :, 3, 3]) and torch.equal(constants(2, 8)[1], torch.ones(1, 8, 8))


def test_calibration_threshold_is_the_training_percentile(tiny):
    folder, model, cdm, x, cal = tiny
    det = Detector.for_model(model, folder / "tiny-joint")
    c = components(model, cdm, x, gaussians=det.gaussians)
    assert torch.allclose(c.complexity, c.cdm_bpd - c.png_bpd)
    s = combine(c, cal)
    assert cal.threshold == pytest.approx(float(np.percentile(s.numpy(), 95)), rel=1e-5)
    assert float((s > cal.threshold).float().mean()) <= 0.05 + 1e-9
    assert calibration_path(folder / "tiny-joint") == folder / "tiny-joint.ood.json"
    assert Calibration.load(folder / "tiny-joint.ood.json") == cal


def test_detector_flags_noise_and_passes_training_like_images(tiny):
    folder, model, _, x, _ = tiny
    det = Detector.for_model(model, folder / "tiny-joint")
    noise = block_noise(8, 16, block=1, seed=3)
    r_in, r_out = det(x[:8]), det(noise)
    assert r_out.in_distribution.sum() == 0
    assert auroc(r_in.score, r_out.score) == 1.0
    # the app hands in the features its prediction already read: the same score, the encoder run once
    given = det(noise, features=pooled_features(model, noise))
    assert torch.equal(given.score, r_out.score)


def test_predict_json_has_ood_fields(tiny, tmp_path, capsys):
    folder = tiny[0]
    img = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)).save(img)
    assert main(["predict", str(folder / "tiny-joint"), str(img), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(line["ood_score"], float) and line["in_distribution"] is False
    assert line["ood_score"] > line["ood_threshold"] and "inverted" in line and "steps" in line
    assert main(["predict", str(folder / "tiny-joint"), str(img), "--json", "--no-ood"]) == 0
    assert "ood_score" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_predict_view_warns_about_unfamiliar_inputs(tiny, tmp_path):
    from jdx.ui import models, predict
    folder = tiny[0]
    old = models.CHECKPOINT_DIR
    models.CHECKPOINT_DIR = folder
    try:
        noise = tmp_path / "noise.png"
        Image.fromarray(np.random.default_rng(2).integers(0, 256, (16, 16), dtype=np.uint8)).save(noise)
        shape = tmp_path / "vbar.png"
        Image.fromarray(shape_image(1, np.random.default_rng(3))).save(shape)
        _, note = predict.predict("tiny-joint", str(noise))
        assert "unlike the training data" in note and "OOD score" in note
        assert len(predict.prepared("tiny-joint", str(noise))[1]) >= 1          # the preparation's pictures
        _, note = predict.predict("tiny-joint", str(shape))
        assert "Like the training data" in note
    finally:
        models.CHECKPOINT_DIR = old


@pytest.mark.skipif(not (ROOT / "assets/results/ood/calibration-fmnist-joint.json").is_file(),
                    reason="no shipped OOD calibration")
def test_shipped_score_separates_unfamiliar_inputs_where_likelihood_fails():
    """30 test images vs. 30 of each generated set through the shipped calibration: the combined score
    separates every set (AUROC ≥ 0.9 on these small samples), raw likelihood fails on simple shapes."""
    from jdx.data import load_fashion_mnist
    from jdx.likelihood import random_shapes
    model = jdx.load(ROOT / "checkpoints/fmnist-joint").eval()
    det = Detector.for_model(model, ROOT / "checkpoints/fmnist-joint")
    test = load_fashion_mnist("test").to_model(slice(5000, 5030))
    r_in = det(test, every=True)
    for name, x in {"uniform noise": block_noise(30, 28, block=1, seed=7), "4×4 blocks": block_noise(30, 28, seed=7),
                    "constant": constants(30), "digits": digits(30, seed=7), "shapes": random_shapes(30, 28, seed=7)}.items():
        r = det(x, every=True)
        assert auroc(r_in.score, r.score) >= 0.9, name
        if name == "shapes":
            assert auroc(r_in.components.cdm_bpd, r.components.cdm_bpd) < 0.5      # raw likelihood fails here
