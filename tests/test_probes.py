"""Probes: feature shapes per block, probes that must solve an easy set, the feature cache, the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from jdx import checkpoint, probes
from jdx.cli import main


@pytest.fixture(scope="module")
def joint(tiny_joint):
    return checkpoint.load(tiny_joint)


def test_block_features_have_one_pooled_map_per_block(joint):
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    for pool in (1, 2):
        feats = probes.block_features(joint, x, 10, pool)
        assert len(feats) == len(joint.unet.block_names)
        raw = joint.unet(x, torch.full((3,), 10), return_features=True).features
        assert [f.shape for f in feats] == [(3, r.shape[1] * pool * pool) for r in raw]


def blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    return centres[y] + torch.randn(n, 4, generator=g) * 0.5, y


def test_linear_and_attention_probes_solve_separable_blobs():
    (a, ya), (b, yb) = blobs(600, 0), blobs(300, 1)
    assert probes.linear_probe(a, ya, b, yb).accuracy > 0.95
    # the attention head sees the 4 features as one token of 4 channels (pool 1)
    assert probes.attention_probe(a, ya, b, yb, pool=1, epochs=30).accuracy > 0.9
    # and a probe is not a lookup table: shuffled labels leave it near chance on the test set
    assert probes.linear_probe(a, ya[torch.randperm(600)], b, yb).accuracy < 0.6


def test_feature_cache_reuses_stored_features(joint, tmp_path, monkeypatch):
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    cache = probes.FeatureCache(joint, x, "train", 2, 0, tmp_path)
    first = cache.get(10)
    assert cache.path(10).is_file()
    monkeypatch.setattr(probes, "block_features", lambda *a, **k: pytest.fail("recomputed a cached t"))
    again = probes.FeatureCache(joint, x, "train", 2, 0, tmp_path).get(10)
    assert all(torch.allclose(p, q, atol=1e-2) for p, q in zip(first, again))   # stored as float16
    other = probes.FeatureCache(joint, x, "test", 2, 0, tmp_path)
    assert other.path(10) != cache.path(10)                                       # another key, another file


def test_probe_cli(tiny_joint, shapes_dir, tmp_path, capsys):
    out = tmp_path / "probe"
    assert main(["probe", str(tiny_joint), "--data", str(shapes_dir), "--blocks", "0,3,5", "--t", "0,10",
                 "--cache", str(tmp_path / "cache"), "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "probe.json").read_text())
    assert len(report["accuracy"]) == 3 and len(report["accuracy"][0]) == 2
    assert report["best"]["t"] in (0, 10) and 0 <= report["pixel_probe_accuracy"] <= 1
    assert (out / "probe.png").stat().st_size > 0
    assert main(["probe", str(tiny_joint), "--data", str(shapes_dir), "--blocks", "99", "--out", str(out)]) == 2
    assert "--blocks must be in" in capsys.readouterr().err
