"""2-D toy joint models: data, training, the CLI, and the library's samplers and counterfactuals on points."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import jdx
from jdx.cli import main
from jdx.counterfactual import counterfactual
from jdx.generate import generate
from jdx.guidance import one_hot
from jdx.toy import TOY_SETS, ToyConfig, toy_data, train_toy

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(TOY_SETS))
def test_toy_data(name):
    x, y = toy_data(name, 500, seed=1)
    assert x.shape == (500, 2) and x.abs().max() <= 1
    assert set(y.tolist()) == set(range(len(TOY_SETS[name][1])))
    assert torch.equal(toy_data(name, 500, seed=1)[0], x)
    with pytest.raises(ValueError, match="unknown toy"):
        toy_data("circles", 10)


def test_train_toy_learns_the_gaussian_mixture():
    model, metrics = train_toy(ToyConfig("gmm", hidden=64, depth=2, T=50), steps=300, batch=256)
    assert metrics["test_accuracy"] > 0.9


def test_cli_trains_and_loads_a_toy_checkpoint(tmp_path):
    out = tmp_path / "toy"
    assert main(["train", "toy", "--data", "moons", "--steps", "20", "--batch-size", "64", "--lr", "2e-3",
                 "--out", str(out), "--quiet"]) == 0
    m = jdx.load(out)
    assert m.kind == "toy" and m.info.class_names == TOY_SETS["moons"][1]
    assert "jdx train toy" in m.info.training["command"]
    assert main(["train", "toy", "--data", "fashion-mnist", "--steps", "2", "--out", str(out)]) == 2


def test_cli_trains_a_toy_noise_level_classifier(tmp_path):
    out = tmp_path / "toy-cdm"
    assert main(["train", "toy-cdm", "--data", "gmm", "--steps", "20", "--batch-size", "64", "--out", str(out),
                 "--quiet"]) == 0
    m = jdx.load(out)
    assert m.kind == "toy-cdm" and set(m.info.metrics) == {"test_nll_nats", "probability_mass"}
    x = torch.zeros(3, 2)
    assert m.eps(x, 10).shape == (3, 2) and m.log_likelihood(x).shape == (3,)


@pytest.fixture(scope="module")
def moons():
    return jdx.load(ROOT / "checkpoints/toy-moons")


def test_shipped_toy_samples_land_on_the_data(moons):
    x_T = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    samples = generate(moons, 400, x_T=x_T, sampler="ddpm", steps=moons.schedule.T, seed=0).images
    data, _ = toy_data("moons", 4000, seed=5)
    nearest = torch.cdist(samples, data).min(1).values
    assert (nearest < 0.1).float().mean() > 0.9                            # on the moons, not in between
    noise_nearest = torch.cdist(x_T.clamp(-1, 1), data).min(1).values
    assert nearest.median() < noise_nearest.median() / 3


def test_shipped_toy_counterfactual_crosses_to_the_target(moons):
    point = torch.tensor([[-0.5, 0.3]])                                    # on the upper moon
    assert int(moons.predict(point).argmax()) == 0
    cf = counterfactual(moons, point, one_hot(1, 2), t_star=60, scale=3, steps=60, seed=0)
    assert int(cf.probs_after.argmax()) == 1


def test_train_cli_gives_the_2d_kinds_their_own_learning_rate(monkeypatch, capsys):
    """`jdx train toy-mdm` without --lr once passed the image models' 2e-4 to the 2-D trainers, and every toy
    MDM ended in a Gaussian blob; the 2-D kinds default to TOY_LR, and an explicit --lr still wins."""
    import jdx.toy
    seen = []
    monkeypatch.setattr(jdx.toy, "train_toy_checkpoint",
                        lambda kind, data, out, **kw: seen.append(kw["lr"]) or ("stem", {"test_nll_nats": 0.0}))
    for argv in (["train", "toy-mdm", "--data", "moons", "--steps", "1", "--quiet"],
                 ["train", "toy", "--data", "moons", "--steps", "1", "--quiet"],
                 ["train", "toy-mdm", "--data", "moons", "--steps", "1", "--quiet", "--lr", "1e-4"]):
        assert main(argv) == 0
    assert seen == [jdx.toy.TOY_LR, jdx.toy.TOY_LR, 1e-4] and jdx.toy.TOY_LR == 2e-3
