"""Golden numbers of the shipped checkpoints, measured on the code before the interface refactor (issue 15):
a refactor that changes what a shipped model computes fails here. Inputs are read straight from the PNGs
(not through jdx.data's preparation, which may change on its own) so that only the models are under test."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import jdx
from jdx.generate import generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["0-t-shirt-top-0", "3-dress-1", "7-sneaker-2"]

# p(y | x) of the three examples, as printed by the pre-refactor code (rounded to 1e-6).
PROBS = {
    "fmnist-joint": [
        [0.997772, 2.3e-05, 0.000661, 0.000105, 1.1e-05, 1e-06, 0.001379, 1e-06, 4.7e-05, 0.0],
        [0.000332, 3.4e-05, 0.000385, 0.971853, 0.016806, 2e-06, 0.010573, 4e-06, 7e-06, 4e-06],
        [0.0, 4e-06, 0.0, 0.0, 0.0, 4.5e-05, 0.0, 0.999887, 0.0, 6.3e-05]],
    "fmnist-classifier": [
        [0.996911, 0.0, 2e-05, 4.3e-05, 0.0, 0.0, 0.003026, 0.0, 0.0, 0.0],
        [5e-06, 2e-06, 0.000226, 0.922817, 0.073926, 0.0, 0.003021, 0.0, 3e-06, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.001709, 0.0, 0.99821, 0.0, 8.2e-05]],
}
# the joint model's classifier at t = 100 (noise drawn from a generator seeded 0)
PROBS_T100 = [
    [0.964131, 6.7e-05, 0.00072, 0.000513, 3.8e-05, 3e-06, 0.034508, 1e-06, 1.8e-05, 1e-06],
    [0.000834, 0.000319, 0.001763, 0.65649, 0.326587, 4e-06, 0.013668, 2.1e-05, 0.000292, 2.2e-05],
    [2e-06, 1.3e-05, 1e-06, 1e-06, 0.0, 0.000535, 0.0, 0.998986, 1.1e-05, 0.00045]]


def examples() -> torch.Tensor:
    """(3, 1, 28, 28) in [−1, 1], straight from the 8-bit PNGs."""
    return torch.stack([torch.from_numpy(np.array(Image.open(ROOT / "assets" / "examples" / f"{n}.png").convert("L")))
                        .float()[None] / 127.5 - 1 for n in EXAMPLES])


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)          # the golden numbers were measured single-threaded
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", sorted(PROBS))
def test_example_probabilities(name):
    model = jdx.load(ROOT / "checkpoints" / name)
    torch.testing.assert_close(model.predict(examples()), torch.tensor(PROBS[name]), atol=1e-4, rtol=0)


def test_noisy_classifier_probabilities():
    model = jdx.load(ROOT / "checkpoints" / "fmnist-joint")
    p = model.predict(examples(), 100, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(p, torch.tensor(PROBS_T100), atol=1e-4, rtol=0)


def test_cdm_bits_per_dim():
    cdm = jdx.load(ROOT / "checkpoints" / "fmnist-cdm")
    bpd = cdm.bits_per_dim(examples()).detach()
    torch.testing.assert_close(bpd, torch.tensor([3.90203, 3.83321, 3.69395]), atol=1e-4, rtol=0)


def test_seeded_samples():
    """A seeded 10-step DDIM sample of the DDPM and a guided one of the joint model: sum and |sum| of pixels."""
    ddpm = jdx.load(ROOT / "checkpoints" / "fmnist-ddpm")
    x = generate(ddpm, 4, steps=10, seed=0).images
    assert x.shape == (4, 1, 28, 28)
    assert float(x.sum()) == pytest.approx(-746.8315, abs=0.05)
    assert float(x.abs().sum()) == pytest.approx(2043.2203, abs=0.05)
    assert float(x[0, 0, 14, 14]) == pytest.approx(0.769848, abs=1e-4)
    joint = jdx.load(ROOT / "checkpoints" / "fmnist-joint")
    x = generate(joint, 4, weights=[0] * 7 + [1, 0, 0], scale=8.0, steps=10, seed=0).images
    assert float(x.sum()) == pytest.approx(-2056.2363, abs=0.05)
    assert float(x.abs().sum()) == pytest.approx(2756.9680, abs=0.05)


def test_seeded_mdm_sample():
    from jdx.mdm.sampling import sample
    mdm = jdx.load(ROOT / "checkpoints" / "fmnist-mdm-vpsde")
    y, _ = sample(mdm, 2, 10, "em", torch.Generator().manual_seed(0))
    assert float(y[:, 0].sum()) == pytest.approx(-302.1944, abs=0.05)
    assert float(y[:, 0].abs().sum()) == pytest.approx(2615.2419, abs=0.05)


@pytest.mark.parametrize("name,total", [("fmnist-ddpm", 197990), ("fmnist-mdm-vpsde", 189507)])
def test_cli_sample_checksum(tmp_path, name, total):
    """`jdx sample --n 2 --steps 10` → the sum of the uint8 pixels of the .npz (one rounding step of slack)."""
    out = tmp_path / "s.npz"
    r = subprocess.run([sys.executable, "-m", "jdx", "sample", str(ROOT / "checkpoints" / name), "--n", "2",
                        "--steps", "10", "--out", str(out), "--device", "cpu"], capture_output=True, text=True,
                       env={**os.environ, "JDX_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    assert z["images"].shape == (2, 28, 28, 1) and z["labels"].tolist() == [-1, -1]
    assert abs(int(z["images"].astype(np.int64).sum()) - total) <= 10


# What jdx.evaluate.training_metrics (training's periodic evaluation) and test_bpd return on the three examples,
# and the two dequantisations with a generator seeded 5: measured on the code before the evaluation was merged
# into jdx/evaluate.py and the dequantisation written once (issue 15), at commit 628204e.
TRAINING_METRICS = {
    "fmnist-joint": {"test_accuracy": 1.0, "test_diffusion_loss": 0.017241170211714143, "eval_images": 3},
    "fmnist-ddpm": {"test_diffusion_loss": 0.021005448435439545, "eval_images": 3},
    "fmnist-cdm": {"test_diffusion_loss": 0.024050287648934087, "test_bpd": 3.8012688159942627, "eval_images": 3},
    "fmnist-mdm-vpsde": {"test_bpd": 2.929520606994629, "eval_images": 3},
    "fmnist-classifier": {"test_accuracy": 1.0, "target_accuracy": 1 / 3, "eval_images": 3},
}


def example_set():
    from jdx.data import Dataset
    images = ((examples() + 1) * 127.5).round().to(torch.uint8)
    return Dataset(images, torch.tensor([0, 3, 7]), [str(k) for k in range(10)], "examples")


@pytest.mark.parametrize("name", sorted(TRAINING_METRICS))
def test_training_metrics(name):
    from jdx.evaluate import training_metrics
    model = jdx.load(ROOT / "checkpoints" / name)
    got = training_metrics(model, example_set(), 3, torch.device("cpu"), batch=2,
                           shift="invert" if name == "fmnist-classifier" else "")
    assert got == pytest.approx(TRAINING_METRICS[name], rel=1e-6)


def test_mdm_test_bpd():
    from jdx.evaluate import test_bpd
    got = test_bpd(jdx.load(ROOT / "checkpoints" / "fmnist-mdm-cld"), example_set().to_model(), repeats=2, batch=2,
                   seed=3, progress=False)
    # session 11: the mixed-score CLD checkpoint (was 3.553955078125 / 2.990546941757202 for the ε-network)
    assert got == pytest.approx({"test_bpd": 3.557582139968872, "test_bpd_se": 2.978168487548828, "bpd_images": 3,
                                 "bpd_repeats": 2}, rel=1e-6)


def test_dequantisations():
    from jdx.cdm import dequantize
    from jdx.mdm.elbo import dequantize_logit
    x = example_set().to_model()
    d = dequantize(x, torch.Generator().manual_seed(5)).double()
    assert [d.sum().item(), d.abs().sum().item()] == pytest.approx([-805.1555554866791, 1865.2941930294037], rel=1e-9)
    x_logit, log_det = dequantize_logit(x, torch.Generator().manual_seed(5))
    x_logit = x_logit.double()
    assert [x_logit.sum().item(), x_logit.abs().sum().item()] == pytest.approx([-2761.829894453287, 4934.771464139223], rel=1e-9)
    assert log_det.tolist() == pytest.approx([1700.2178955078125, 1777.169189453125, 1980.562255859375], rel=1e-7)
