"""Attributions and the model-randomisation sanity check (Adebayo et al. 2018) on the tiny joint model,
and `jdx attribute` through the CLI."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

import jdx
from jdx.attribution import DEFAULT, METHODS, attribute, redrawn, sanity_check, spearman
from jdx.cli import main

from conftest import shape_image

pytest.importorskip("captum")


@pytest.fixture(scope="module")
def model(tiny_joint):
    return jdx.load(tiny_joint).eval()


@pytest.fixture(scope="module")
def x30():
    """30 held-out shape images (never trained on: another seed), (30, 1, 16, 16) in [−1, 1]."""
    rng = np.random.default_rng(123)
    a = np.stack([shape_image(i % 3, rng) for i in range(30)])
    return torch.from_numpy(a)[:, None].float() / 127.5 - 1


def test_spearman_is_exact_on_known_rankings():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(spearman(a, a * 10), torch.tensor([1.0], dtype=torch.float64))
    assert torch.allclose(spearman(a, -a), torch.tensor([-1.0], dtype=torch.float64))


def test_redrawn_changes_only_the_asked_part(model):
    head = redrawn(model, "head")
    same = all(torch.equal(a, b) for a, b in zip(head.unet.parameters(), model.unet.parameters()))
    diff = any(not torch.equal(a, b) for a, b in zip(head.head.parameters(), model.head.parameters()))
    assert same and diff
    everything = redrawn(model, "all")
    assert all(not torch.equal(a, b) for a, b in zip(everything.unet.parameters(), model.unet.parameters())
               if a.numel() > 1 and a.dim() > 1)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_a_signed_map_at_model_resolution(model, x30, method):
    maps, k = attribute(model, x30[:2], None, method)
    assert maps.shape == (2, 16, 16) and maps.dtype == torch.float32 and torch.isfinite(maps).all()
    assert torch.equal(k, model.classify(x30[:2], 0).argmax(1))
    assert maps.abs().sum() > 0
    np.random.seed(0)                      # whatever state NumPy's and torch's global generators are left in …
    torch.rand(3)
    again, _ = attribute(model, x30[:2], None, method)
    assert torch.equal(maps, again)        # … the same picture gives the same map (captum draws from NumPy)


def test_the_check_fails_a_map_that_outlines_the_input(model, x30):
    """The check must be able to fail: a 'map' that is the input itself ignores the weights → ρ = 1."""
    outline = lambda m, x, k, t=0, seed=0: x.sum(1) + 1          # noqa: E731
    r = sanity_check(model, x30, outline)
    assert r.rho_head > 0.99 and r.rho_all > 0.99 and not r.passes()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "counterfactual difference"])
def test_randomisation_check_per_method(model, x30, method):
    """The default passes on the tiny model too; black-baseline IG outlines the input more than it does."""
    r = sanity_check(model, x30, method)
    assert r.images == 30 and -1 <= r.rho_head <= 1 and -1 <= r.rho_all <= 1
    if method == DEFAULT:
        assert r.passes(), r
    if method == "Integrated Gradients (black baseline)":
        assert r.rho_all > sanity_check(model, x30, DEFAULT).rho_all


def test_attribute_cli_writes_npy_and_png(tiny_joint, tmp_path):
    rng = np.random.default_rng(5)
    img = tmp_path / "vbar.png"
    Image.fromarray(shape_image(1, rng)).save(img)
    out = tmp_path / "maps"
    assert main(["attribute", str(tiny_joint), str(img), "--target", "0", "--out", str(out), "--json"]) == 0
    a = np.load(out / "vbar.npy")
    assert a.shape == (16, 16) and a.dtype == np.float32 and (a < 0).any() and (a > 0).any()
    assert Image.open(out / "vbar.png").size == (128, 128)
    assert main(["attribute", str(tiny_joint), str(img), "--method", "nonsense", "--out", str(out)]) != 0
