"""CDM: Thm 3.1 and 3.2 against closed forms on Gaussian data, the cumulative-sum parameterisation,
dequantisation, the 2-D toy CDM's normalisation, and the CLI end to end on a tiny model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from jdx import checkpoint
from jdx.cdm import CDM, CDMObjective, LevelClassifier, dequantize
from jdx.cli import main
from jdx.diffusion import Schedule, ScheduleConfig
from jdx.unet import UNetConfig

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


class GaussianLevels(LevelClassifier, nn.Module):
    """The Bayes-optimal noise-level classifier for data x₀ ~ N(μ, s² I): p_t = N(√ᾱ_t μ, (ᾱ_t s² + 1 − ᾱ_t) I),
    so f[t](x) = log p_t(x) is known exactly; log_ratios are its neighbouring differences."""

    def __init__(self, mu: Tensor, s: float, T: int = 40):
        nn.Module.__init__(self)
        self.schedule = Schedule(ScheduleConfig("linear", T, 1e-3, 0.2))
        self._init_levels()
        self.mu, self.s = mu, s

    def log_density(self, x: Tensor) -> Tensor:                     # (B, T+2)
        a = self.alpha_bar.double()[None]                            # (1, T+2)
        var = a * self.s ** 2 + 1 - a
        x, mu = x.double().flatten(1), self.mu.double().flatten()
        sq = ((x[:, None, :] - a.sqrt()[..., None] * mu) ** 2).sum(-1)  # (B, T+2)
        d = x.shape[1]
        return -0.5 * sq / var - 0.5 * d * torch.log(2 * math.pi * var)

    def log_ratios(self, x: Tensor) -> Tensor:
        f = self.log_density(x)
        return torch.cat([f[:, :1], f.diff(dim=1)], dim=1)


def test_cumulative_sum_gives_back_the_logits():
    model = GaussianLevels(torch.zeros(3), 0.5)
    x = torch.randn(5, 3)
    assert torch.allclose(model.logits(x).double(), model.log_density(x), atol=1e-3)


@pytest.mark.parametrize("t", [1, 10, 25, 40])
def test_thm_3_1_gradient_of_the_optimal_classifier_is_the_mmse_denoiser(t):
    mu, s = torch.tensor([0.5, -0.3, 0.2]), 0.4
    model = GaussianLevels(mu, s)
    x_t = torch.randn(6, 3)
    eps_hat = model.eps(x_t, t)
    a = model.alpha_bar[t]
    # E[ε | x_t] for Gaussian data: √(1 − ᾱ)(x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ)
    expected = (1 - a).sqrt() * (x_t - a.sqrt() * mu) / (a * s ** 2 + 1 - a)
    assert torch.allclose(eps_hat, expected, atol=1e-4)
    # and it is not the identity map: at these levels the denoiser differs from x_t by a lot
    assert not torch.allclose(eps_hat, x_t, atol=0.05)


def test_thm_3_2_one_step_likelihood_is_the_data_density():
    mu, s = torch.tensor([0.5, -0.3]), 0.4
    model = GaussianLevels(mu, s)
    x = torch.randn(8, 2) * 0.5
    expected = torch.distributions.Normal(mu, s).log_prob(x).sum(1)
    assert torch.allclose(model.log_likelihood(x), expected.float(), atol=1e-3)


def test_thm_3_2_integrates_to_one_in_one_dimension():
    model = GaussianLevels(torch.tensor([0.3]), 0.2)
    u = torch.linspace(-3, 3, 6001)[:, None]
    mass = model.log_likelihood(u).exp().sum() * 6 / 6000
    assert abs(mass.item() - 1) < 1e-3


def test_dequantize_stays_in_the_pixel_bin():
    p = torch.arange(256).float()
    x = p / 127.5 - 1
    d = dequantize(x, torch.Generator().manual_seed(0))
    assert d.min() >= -1 and d.max() < 1
    assert torch.equal(((d + 1) * 128).floor(), p)      # (p + u)·2/256 − 1 with u ∈ [0, 1)


def test_cdm_has_no_time_input_and_its_loss_trains_the_gradient():
    unet = UNetConfig(1, 8, 8, 8, (1, 2), 1, (1,), 0.0, time_input=False)
    model = CDM(unet, ScheduleConfig("linear", 20))
    assert model.unet.time_embed is None
    with pytest.raises(ValueError, match="time input"):
        CDM(UNetConfig(1, 8, 8, 8, (1, 2), 1, (1,), 0.0), ScheduleConfig("linear", 20))
    out = CDMObjective(model)(torch.rand(4, 1, 8, 8) * 2 - 1)
    out.loss.backward()
    # the MSE reaches the weights only through ∇ₓF: a double backward
    assert all(p.grad is not None for p in model.unet.parameters() if p.requires_grad)
    assert model.logits(torch.zeros(2, 1, 8, 8)).shape == (2, 22)


def test_short_toy_cdm_training_learns_a_denoiser():
    from jdx.toy import ToyConfig, toy_data, train_toy_cdm
    model, _ = train_toy_cdm(ToyConfig("gmm", hidden=64, T=50), steps=300, batch=256)
    x, _ = toy_data("gmm", 500, seed=5)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    x_t = model.schedule.noise_to(x, 25, eps)
    # its ε̂ (from the gradient alone) beats the trivial ε̂ = 0 on fresh noise at a mid level
    assert (model.eps(x_t, 25) - eps).pow(2).mean() < 0.7 * eps.pow(2).mean()


def gmm_log_density(x: Tensor) -> Tensor:
    """The toy 'gmm' set's true density: four N(c_k, 0.12² I) blobs of weight ¼ (jdx.toy._gmm)."""
    k = torch.arange(4)
    centres = 0.55 * torch.stack([torch.cos(math.pi / 4 + k * math.pi / 2), torch.sin(math.pi / 4 + k * math.pi / 2)], 1)
    comp = torch.distributions.Normal(centres, 0.12).log_prob(x[:, None, :]).sum(-1)   # (N, 4)
    return torch.logsumexp(comp, 1) - math.log(4)


def test_shipped_toy_cdm_is_a_normalised_density_close_to_the_truth():
    from jdx.toy import probability_mass, toy_data
    model = checkpoint.load(ROOT / "checkpoints/toy-gmm-cdm")
    assert 0.9 < probability_mass(model) < 1.15                     # Thm 3.2 leaves no constant to fit
    x, _ = toy_data("gmm", 4000, seed=11)
    with torch.no_grad():
        nll, true_nll = -model.log_likelihood(x).mean().item(), -gmm_log_density(x).mean().item()
        assert abs(nll - true_nll) < 0.15, (nll, true_nll)         # cross-entropy ≥ entropy, and close to it
        # between the blobs, where the data have no mass, the model puts much less
        assert model.log_likelihood(torch.zeros(1, 2)).item() < -nll - 2


@pytest.fixture(scope="module")
def tiny_cdm(tmp_path_factory, shapes_dir):
    out = tmp_path_factory.mktemp("ck") / "cdm"
    assert main(["train", "cdm", "--data", str(shapes_dir), "--out", str(out), "--steps", "6"] + TINY) == 0
    return out


def test_cdm_checkpoint_round_trip(tiny_cdm):
    model = checkpoint.load(tiny_cdm)
    assert model.kind == "cdm" and "test_bpd" in model.info.metrics
    again = checkpoint.load(tiny_cdm)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.equal(model.logits(x), again.logits(x))
    assert torch.allclose(model.eps(x, 10), again.eps(x, 10))


def test_likelihood_cli_json(tiny_cdm, shapes_dir, capsys):
    images = sorted(shapes_dir.glob("*/0.png"))
    assert main(["likelihood", str(tiny_cdm), *map(str, images), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in rows] == list(map(str, images))
    assert all(isinstance(r["bpd"], float) and math.isfinite(r["bpd"]) for r in rows)


def test_eval_cdm_reports_nll_mse_ood_and_fid(tiny_cdm, tiny_classifier, capsys):
    assert main(["eval", str(tiny_cdm), "--json", "--fid-samples", "8", "--steps", "3",
                 "--feature-classifier", str(tiny_classifier), "--ood-n", "8", "--mse-n", "8", "--compare", ""]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "cdm" and sum(report["nll_histogram"]["counts"]) == report["nll_images"] > 0
    assert set(report["ood_auroc"]) == {"uniform noise", "inverted", "random shapes"}
    assert all(0 <= v <= 1 for v in report["ood_auroc"].values())
    assert "1" in report["denoising_mse"] and math.isfinite(report["fid"])


def test_eval_ddpm_elbo_and_mse_side_by_side(tiny_joint, tiny_cdm, capsys):
    assert main(["eval", str(tiny_joint), "--json", "--fid-samples", "0", "--cf-n", "0", "--elbo-n", "4",
                 "--mse-n", "4", "--compare", str(tiny_cdm)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["elbo_images"] == 4 and report["elbo_bpd"] > 0
    assert report["elbo_bpd"] == min(report["elbo_bpd_posterior_var"], report["elbo_bpd_beta"])
    assert report["compare"]["kind"] == "cdm"
    assert report["denoising_mse"].keys() == report["compare"]["denoising_mse"].keys()


def test_likelihood_needs_a_diffusion_model(tiny_classifier, shapes_dir, capsys):
    image = str(next(shapes_dir.glob("*/0.png")))
    assert main(["likelihood", str(tiny_classifier), image]) == 2
    assert "cdm, ddpm or joint" in capsys.readouterr().err
