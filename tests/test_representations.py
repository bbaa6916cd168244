"""Representations view: the test set's projections ship per (block, t), float16, for the weights they came
from, and the view answers from them with one U-Net pass on the image."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

pytest.importorskip("gradio")
from jdx.ui import models, representations as rep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "checkpoints" / "representations").glob("*.safetensors"))


@pytest.fixture()
def tiny(tiny_joint, monkeypatch, app_checkpoints):
    folder = app_checkpoints(**{"tiny-joint": tiny_joint})
    monkeypatch.setattr(rep, "SHIPPED", folder / "representations")
    rep._shipped.cache_clear()
    rep._COMPUTED.clear()
    yield models.get("tiny-joint")
    rep._shipped.cache_clear()
    rep._COMPUTED.clear()


def test_shipped_projections_equal_computed_ones(tiny, shapes_dir):
    path = rep.ship(tiny, rep.SHIPPED, ts=(0, 10))
    assert rep.shipped_t("tiny-joint") == (0, 10)
    assert not (rep.SHIPPED / ".parts").exists()                      # parts folded into the file
    with safe_open(path, "pt") as f:
        assert f.metadata()["weights"] == rep.weights_id(tiny)
        assert {f.get_tensor(k).dtype for k in f.keys() if k != "labels"} == {__import__("torch").float16}
    computed, labels = rep.test_projections(tiny, 10)
    mid = len(tiny.unet.encoder_channels)
    shipped = rep.projection("tiny-joint", mid, 10)
    assert np.array_equal(shipped.labels, labels)
    scale = np.abs(computed[mid].coords).max()
    assert np.abs(shipped.coords - computed[mid].coords).max() < 2e-3 * scale      # float16 rounding only
    # a level that is not shipped is computed (and says so through progress), then kept
    seen = []
    other = rep.projection("tiny-joint", mid, 25, progress=lambda p, desc: seen.append(desc))
    assert seen and "test images at t = 25" in seen[0] and other.coords.shape == computed[mid].coords.shape
    assert rep.projection("tiny-joint", mid, 25) is other


def test_shipped_projections_are_ignored_for_other_weights(tiny):
    rep.ship(tiny, rep.SHIPPED, ts=(0,))
    meta_path = rep.SHIPPED / "tiny-joint.safetensors"
    from safetensors.torch import load_file, save_file
    with safe_open(meta_path, "pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(meta_path), meta_path, metadata={**meta, "weights": "0" * 16})
    rep._shipped.cache_clear()
    assert rep.shipped_t("tiny-joint") == ()


def test_view_answers_with_a_mosaic_pca_and_summary(tiny):
    rep.ship(tiny, rep.SHIPPED, ts=(10,))
    image = str(ROOT / "assets" / "examples" / "7-sneaker-0.png")
    maps, pca, summary = rep.representations.__wrapped__("tiny-joint", image, "mid", 10, 0)
    assert maps.mode == "RGB" and maps.width >= 600
    assert "Block **mid**, t = 10" in summary and "nearest to yours" in summary
    assert pca.axes


def test_mosaic_scales_each_channel_and_leaves_gaps():
    fmap = np.stack([np.full((4, 4), 5.0), np.arange(16.0).reshape(4, 4)])
    a = np.asarray(rep.feature_mosaic(fmap, cols=2, width=9))
    assert a.shape == (4, 9, 3)
    assert (a[:, 4] == 255).all()                                      # the gap column
    assert not np.array_equal(a[0, 5], a[3, 8])                        # channel 2 spans its own colour scale


@pytest.mark.skipif(not SHIPPED, reason="no shipped projections")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_files_match_their_checkpoints_and_budget(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        assert meta["weights"] == rep.weights_id(models.get(path.stem, directory=ROOT / "checkpoints", on="cpu"))
        assert set(json.loads(meta["t"])) <= set(rep.SHIPPED_T) and 50 in json.loads(meta["t"])
    assert path.stat().st_size < 20e6
    assert sum(p.stat().st_size for p in (ROOT / "checkpoints").rglob("*") if p.is_file()) < 80e6
