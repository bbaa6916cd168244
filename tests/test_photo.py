"""The upload pipeline: photos in, Fashion-MNIST-like view out (jdx.photo), every step recorded, and the
--preprocess option of the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from jdx.cli import main
from jdx.data import DataError, prepare_image
from jdx.photo import border_plane, fashion_mnist_view


def garment_photo(rng: np.random.Generator, size=(200, 160)) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A dark 'garment' (a T shape) on a light, graded, textured background with a soft drop shadow;
    returns the photo and the garment's box (left, top, right, bottom)."""
    H, W = size
    yy, xx = np.mgrid[:H, :W] / max(H, W)
    bg = 210 + 25 * xx - 15 * yy + 5 * np.sin(xx * 90) + rng.normal(0, 3, (H, W))
    obj = np.zeros((H, W))
    top, left = 50, 40
    obj[top:top + 20, left:left + 80] = 1               # sleeves
    obj[top:top + 90, left + 25:left + 55] = 1          # body
    shadow = np.asarray(Image.fromarray((np.roll(obj, (8, 8), (0, 1)) * 255).astype(np.uint8))
                        .filter(ImageFilter.GaussianBlur(5)), np.float64) / 255
    a = bg * (1 - 0.25 * shadow)
    a = np.where(obj > 0, 40 + rng.normal(0, 3, (H, W)), a)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), (left, top, left + 80, top + 90)


def test_border_plane_recovers_a_graded_background():
    yy, xx = np.mgrid[:50, :80]
    lum = 100 + 30 * xx / 80 - 20 * yy / 50
    plane, spread = border_plane(lum, 2)
    assert np.allclose(plane, lum) and spread < 1e-6


def test_an_object_touching_the_border_is_not_taken_for_background():
    """A garment photographed up to the frame's top edge: its pixels on the border are left out of the background
    fit (they tilted the plane and inflated the texture until the garment was 'background')."""
    rng = np.random.default_rng(2)
    a = 235 + rng.normal(0, 2, (200, 160))                     # a plain light backdrop
    a[:150, 20:140] = 40 + rng.normal(0, 3, (150, 120))         # from the top edge down, most of its width
    view = fashion_mnist_view(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)))
    assert view.inverted and all(abs(c - e) <= 2 for c, e in zip(view.crop, (20, 0, 140, 150)))


def test_photo_pipeline_inverts_suppresses_background_and_crops():
    img, (l, t, r, b) = garment_photo(np.random.default_rng(0))
    view = fashion_mnist_view(img)
    assert view.inverted
    assert abs(view.crop[0] - l) <= 2 and abs(view.crop[1] - t) <= 2 and abs(view.crop[2] - r) <= 2 \
        and abs(view.crop[3] - b) <= 2                      # cropped to the garment, not its shadow
    a = np.asarray(view.image, np.float64)
    assert a.shape[0] == a.shape[1] and abs(a.shape[0] - 90) <= 2  # a square of the longer side
    assert a[:, :5].max() == 0 and a[:, -5:].max() == 0       # centred horizontally: black margins
    assert a[5:15, 40:50].mean() > 200                         # the garment is bright, as in Fashion-MNIST
    assert [c for c, _ in view.stages] == ["upload", "inverted", "no background", "cropped", "square"]


def test_prepare_image_records_the_steps_and_matches_fashion_mnist_layout():
    img, _ = garment_photo(np.random.default_rng(1))
    p = prepare_image(img, 28, 1)
    assert p.pixels.shape == (1, 28, 28) and p.inverted and p.crop is not None
    rec = p.record()
    assert rec["preprocess"] == "auto" and rec["inverted"] and rec["cropped"]
    assert any("cropped" in s for s in rec["steps"]) and rec["steps"][-1] == "resized to 28×28"
    rows = (p.pixels[0] > 30).any(1)
    assert rows[:2].any() and rows[-2:].any()                  # the longer side fills the frame
    assert len(p.stages) == 6


def test_model_sized_images_are_left_alone_and_none_does_nothing():
    a = np.zeros((28, 28), np.uint8)
    a[5:20, 8:18] = 200
    p = prepare_image(Image.fromarray(a), 28, 1)
    assert torch.equal(p.pixels[0], torch.from_numpy(a)) and p.steps == () and not p.inverted
    light = Image.fromarray(255 - a)
    assert prepare_image(light, 28, 1).inverted                          # auto: light background inverted
    assert torch.equal(prepare_image(light, 28, 1).pixels[0], torch.from_numpy(a))
    none = prepare_image(light, 28, 1, preprocess="none")
    assert not none.inverted and torch.equal(none.pixels[0], torch.from_numpy(255 - a))
    with pytest.raises(DataError, match="preprocess"):
        prepare_image(light, 28, 1, preprocess="magic")


def test_cli_likelihood_and_predict_say_what_was_done(tiny_joint, tmp_path, capsys):
    a = np.zeros((16, 16), np.uint8)
    a[3:13, 6:10] = 230
    img = tmp_path / "inverted.png"
    Image.fromarray(255 - a).save(img)
    lines = {}
    for mode in ("auto", "none"):
        assert main(["likelihood", str(tiny_joint), str(img), "--json", "--preprocess", mode]) == 0
        lines[mode] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert lines["auto"]["inverted"] is True and lines["none"]["inverted"] is False
    assert lines["auto"]["preprocess"] == "auto" and lines["auto"]["bpd"] != lines["none"]["bpd"]
    assert main(["predict", str(tiny_joint), str(img), "--json", "--preprocess", "none"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["inverted"] is False and line["steps"] == [] and line["preprocess"] == "none"
