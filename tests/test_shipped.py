"""The shipped Fashion-MNIST checkpoints work the minute the repo is cloned."""
from pathlib import Path

import pytest
import torch

import jdx
from jdx.counterfactual import counterfactual

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "assets" / "examples").glob("*.png"))


@pytest.fixture(scope="module")
def joint():
    return jdx.load(ROOT / "checkpoints" / "fmnist-joint")


def test_all_shipped_checkpoints_load_and_are_small():
    total = 0
    names = sorted(p.stem for p in (ROOT / "checkpoints").glob("*.json"))
    assert {"fmnist-joint", "fmnist-ddpm", "fmnist-classifier", "fmnist-cdm", "fmnist-mdm-vpsde", "fmnist-mdm-cld",
            "fmnist-mdm-learned", "toy-moons-learned"} <= set(names)
    for name in names:
        m = jdx.load(ROOT / "checkpoints" / name)
        assert m.info.training["command"].startswith("jdx train") and m.info.training["steps"] > 0
        size = (ROOT / "checkpoints" / f"{name}.safetensors").stat().st_size
        assert size < 20e6
        total += size
    assert total < 80e6


def test_shipped_multivariate_diffusions_share_one_network_and_budget():
    models = {d: jdx.load(ROOT / "checkpoints" / f"fmnist-mdm-{d}") for d in ("vpsde", "cld", "learned")}
    shapes = {d: {k: v for k, v in m.config_dict()["unet"].items() if k not in ("in_channels", "out_channels")}
              for d, m in models.items()}
    assert shapes["vpsde"] == shapes["cld"] == shapes["learned"]
    assert len({m.info.training["steps"] for m in models.values()}) == 1
    assert all(0 < m.info.metrics["test_bpd"] < 8 for m in models.values())
    Q, D = models["learned"].diffusion.Q().detach(), models["learned"].diffusion.D().detach()
    assert torch.allclose(Q, -Q.T) and torch.linalg.eigvalsh(D).min() >= 0


def test_shipped_examples_are_classified(joint):
    """30 test-set images (3 per class, the first of each class in the test set): the model's 90.8 % test
    accuracy predicts about 27 right; chance is 3."""
    assert len(EXAMPLES) == 30
    names = [n.lower().replace("/", "-").replace(" ", "-") for n in joint.info.class_names]
    right = [names[int(joint.predict(jdx.image_to_input(p)).argmax())] in p.name for p in EXAMPLES]
    assert sum(right) >= 26, [p.name for p, ok in zip(EXAMPLES, right) if not ok]


def test_shipped_counterfactual_moves_toward_target(joint):
    x = torch.cat([jdx.image_to_input(p) for p in EXAMPLES[:4]])       # T-shirts and a trouser
    target = torch.zeros(10)
    target[1] = 1.0                                                    # toward "Trouser"
    cf = counterfactual(joint, x, target, t_star=200, scale=60.0, steps=10, seed=0)
    assert (cf.probs_after[:, 1] > cf.probs_before[:, 1]).float().mean() >= 0.75
