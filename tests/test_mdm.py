"""Multivariate diffusions: the automatic kernel against closed forms and simulation, the constraints on a
learned diffusion, the stationary law, the ELBO against an exact likelihood, the samplers, the CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from jdx import checkpoint
from jdx.cli import main
from jdx.mdm import DIFFUSIONS, MDM, DiffusionConfig, LinearDiffusion, MDMConfig, MDMObjective
from jdx.mdm.diffusions import s_of_tau, tau_of_s
from jdx.mdm.elbo import bits_per_dim, dequantize_logit, elbo, from_logit
from jdx.mdm.kernel import cholesky, transition
from jdx.mdm.nets import MLPConfig
from jdx.mdm.sampling import forward_path, sample

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def diffusion(name: str, K: int | None = None) -> LinearDiffusion:
    return LinearDiffusion(DiffusionConfig(name, K or DIFFUSIONS[name]))


class ExactGaussianScore(torch.nn.Module):
    """ε̂ of the exact score for 1-D data N(μ, σ²): y_τ is Gaussian with mean Φ[:,0]μ and covariance
    Σ_τ + σ² Φ[:,0]Φ[:,0]ᵀ, so the optimal score network is known in closed form."""

    def __init__(self, diff: LinearDiffusion, mu: float, var: float):
        super().__init__()
        self.diffusion, self.mu, self.var, self.data_shape = diff, mu, var, (1,)

    def eps(self, y, tau):
        tau = torch.as_tensor(tau, dtype=torch.float64).expand(y.shape[0])
        if (tau == tau[0]).all():      # a sampler's step: one kernel for the batch
            Phi, Sigma = (m.expand(len(tau), -1, -1) for m in transition(self.diffusion, tau[:1]))
        else:
            Phi, Sigma = transition(self.diffusion, tau)
        c = Phi[:, :, 0]
        S_marg = Sigma + self.var * c[:, :, None] * c[:, None, :]
        r = y.double().flatten(1) - c * self.mu
        score = -torch.linalg.solve(S_marg, r[..., None])
        return (-(cholesky(Sigma).transpose(1, 2) @ score)[..., 0]).float().view_as(y)


def test_time_change_inverts():
    s = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(s_of_tau(tau_of_s(s)), s, atol=1e-12)


def test_kernel_is_the_closed_form_vpsde_kernel_for_K_1():
    tau = torch.tensor([1e-4, 0.1, 1.0, 5.05])
    Phi, Sigma = transition(diffusion("vpsde"), tau)
    assert torch.allclose(Phi[:, 0, 0], torch.exp(-tau.double() / 2), rtol=1e-10)
    assert torch.allclose(Sigma[:, 0, 0], 1 - torch.exp(-tau.double()), rtol=1e-8)


def test_cld_kernel_matches_a_monte_carlo_simulation_of_the_sde():
    d = diffusion("cld")
    A, S = d.A().double(), 2 * d.D().double()
    g = torch.Generator().manual_seed(0)
    n, steps, tau_end, x = 20000, 200, 0.8, 1.5
    y = torch.zeros(n, 2, dtype=torch.float64)
    y[:, 0] = x
    y[:, 1] = torch.randn(n, generator=g, dtype=torch.float64) * d.config.init_aux_var ** 0.5
    h = tau_end / steps
    for _ in range(steps):        # Euler–Maruyama, dy = A y dτ + √S dB (noise on the velocity only)
        y = y + h * y @ A.T + math.sqrt(h) * torch.randn(n, 2, generator=g, dtype=torch.float64) * S.diagonal().sqrt()
    Phi, Sigma = transition(d, torch.tensor([tau_end]))
    assert torch.allclose(y.mean(0), Phi[0, :, 0] * x, atol=0.02)
    assert torch.allclose(torch.cov(y.T), Sigma[0], atol=0.015)


@pytest.mark.parametrize("name", list(DIFFUSIONS))
def test_the_stationary_law_is_the_chosen_gaussian(name):
    d = diffusion(name)
    A, D, var = d.A().double(), d.D().double(), torch.diag(d.sigma_inf.double())
    # Lyapunov: A Σ∞ + Σ∞ Aᵀ + 2D = 0, i.e. N(0, Σ∞) does not move under the SDE
    assert torch.allclose(A @ var + var @ A.T + 2 * D, torch.zeros_like(D), atol=1e-6)
    Phi, Sigma = transition(d, torch.tensor([40.0]))
    assert Phi.abs().max() < 1e-3 and torch.allclose(Sigma[0], var, atol=2e-3)


def test_learned_q_stays_skew_and_d_psd_while_learning():
    torch.manual_seed(0)
    model = MDM(MDMConfig(DiffusionConfig("learned", 3), mlp=MLPConfig(dim=2, hidden=32, depth=2)))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    Q0, D0 = model.diffusion.Q().detach().clone(), model.diffusion.D().detach().clone()
    objective = MDMObjective(model)
    for _ in range(30):
        out = objective(torch.randn(64, 2) * 0.5 + 0.3)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    Q, D = model.diffusion.Q().detach(), model.diffusion.D().detach()
    assert not torch.allclose(Q, Q0) and not torch.allclose(D, D0)     # they did learn
    assert torch.allclose(Q, -Q.T)
    assert torch.linalg.eigvalsh(D).min() >= -1e-6


@pytest.mark.parametrize("name", ["vpsde", "cld", "learned"])
def test_elbo_on_a_1d_gaussian_is_close_to_the_true_log_likelihood(name):
    torch.manual_seed(1)
    mu, var = 0.7, 0.09
    x = mu + var ** 0.5 * torch.randn(100000, 1)
    true = (-0.5 * (x[:, 0] - mu) ** 2 / var - 0.5 * math.log(2 * math.pi * var)).mean()
    e = elbo(ExactGaussianScore(diffusion(name), mu, var), x)
    se = e.std() / len(e) ** 0.5
    assert abs(e.mean() - true) < max(4 * se, 0.02), (float(e.mean()), float(true), float(se))
    # …and a wrong score (a Gaussian of the wrong mean) gives a clearly lower bound
    worse = elbo(ExactGaussianScore(diffusion(name), mu + 0.5, var), x)
    assert worse.mean() < true - 0.5


@pytest.mark.parametrize("method", ["em", "ode"])
@pytest.mark.parametrize("name", ["vpsde", "cld"])
def test_samplers_with_the_exact_score_reproduce_the_data(name, method):
    mu, var = 0.7, 0.09
    model = ExactGaussianScore(diffusion(name), mu, var)
    y, traj = sample(model, 3000, steps=150, method=method, generator=torch.Generator().manual_seed(0), keep=5)
    x = y[:, 0, 0]
    assert abs(x.mean() - mu) < 0.03 and abs(x.var() - var) < 0.02, (float(x.mean()), float(x.var()))
    assert traj[0][0] == 1.0 and len(traj) >= 5


def test_forward_path_has_the_kernel_marginals():
    d = diffusion("cld")
    x = torch.full((20000, 1), 1.2)
    path = forward_path(d, x, [0.1, 0.3], torch.Generator().manual_seed(0))
    Phi, Sigma = transition(d, tau_of_s(torch.tensor([0.3])))
    y = path[-1][:, :, 0].double()
    assert torch.allclose(y.mean(0), Phi[0, :, 0] * 1.2, atol=0.03)
    assert torch.allclose(torch.cov(y.T), Sigma[0], atol=0.02)


def test_logit_transform_round_trips_and_bpd_is_finite():
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    x, log_det = dequantize_logit(x0, torch.Generator().manual_seed(0))
    assert torch.allclose(from_logit(x), x0, atol=2 / 255 + 1e-6) and log_det.shape == (4,)
    model = MDM(MDMConfig(DiffusionConfig("cld", 2), mlp=None,
                          unet=__import__("jdx.unet", fromlist=["UNetConfig"]).UNetConfig(2, 2, 8, 8, (1, 2), 1, (), 0.0)))
    bpd = bits_per_dim(model, x0)
    assert bpd.shape == (4,) and torch.isfinite(bpd).all()


def test_mdm_cli_end_to_end(shapes_dir, tmp_path, capsys):
    out = tmp_path / "mdm"
    tiny = [a for a in TINY if a not in ("--T", "50")]
    assert main(["train", "mdm", "--diffusion", "cld", "--data", str(shapes_dir), "--out", str(out),
                 "--steps", "6"] + tiny) == 0
    model = checkpoint.load(out)
    assert model.kind == "mdm" and model.diffusion.K == 2 and model.net.unet.config.in_channels == 2
    capsys.readouterr()
    assert main(["eval", str(out), "--limit", "4", "--bpd-repeats", "1", "--json", "--write"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bpd_images"] == 4 and 0 < report["test_bpd"] < 100
    assert "test_bpd" in checkpoint.read_meta(out)["metrics"]
    assert main(["sample", str(out), "--n", "2", "--steps", "5", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()


def test_toy_mdm_cli_learned(tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["train", "toy-mdm", "--data", "moons", "--diffusion", "learned", "--steps", "30",
                 "--batch-size", "64", "--out", str(out), "--quiet"]) == 0
    model = checkpoint.load(out)
    assert model.kind == "mdm" and not model.is_image
    assert model.config.mixed_var == pytest.approx(0.195, abs=0.01)     # toy-mdm's default: the data's variance
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["test_nll_nats"] > 0


@pytest.mark.parametrize("name", ["cld", "malda", "learned"])
def test_the_mixed_score_with_a_silent_net_is_the_exact_gaussian_score(name):
    """mixed_var > 0: ε̂ = the exact ε̂ of N(0, mixed_var) data + the net. With the net's last layer zeroed the
    model must equal ExactGaussianScore at every τ (batched and one τ for all), and it survives a checkpoint."""
    K = DIFFUSIONS[name]
    model = MDM(MDMConfig(DiffusionConfig(name, K), mlp=MLPConfig(dim=1, hidden=16, depth=2), mixed_var=0.2))
    torch.nn.init.zeros_(model.net.net[-1].weight), torch.nn.init.zeros_(model.net.net[-1].bias)
    exact = ExactGaussianScore(model.diffusion, 0.0, 0.2)
    y = torch.randn(5, K, 1)
    for tau in (torch.tensor([1e-4, 0.01, 0.3, 1.0, 4.0], dtype=torch.float64), torch.tensor(0.3).expand(5)):
        assert torch.allclose(model.eps(y, tau), exact.eps(y, tau), atol=1e-4, rtol=1e-4)
    assert MDMConfig.from_dict(model.config.to_dict()).mixed_var == 0.2


def test_reverse_is_a_pure_function_of_a_noise_predictor_with_a_callback():
    """sample() = a draw from the stationary law + reverse(eps_fn, …); reverse calls back once per step."""
    from jdx.mdm.sampling import prior_sample, reverse, s_grid
    model = checkpoint.load(ROOT / "checkpoints" / "toy-moons-cld")
    for method in ("em", "ode"):
        y_ref, _ = sample(model, 6, 8, method, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        seen = []
        y = reverse(model.eps, model.diffusion, prior_sample(model.diffusion, 6, model.data_shape, g), s_grid(8),
                    method, g, callback=seen.append)
        assert torch.equal(y, y_ref)
        assert [st.i for st in seen] == list(range(8)) and seen[0].s == 1.0
        assert torch.equal(seen[-1].y_next, y)


def test_both_dequantisations_draw_the_same_bins():
    """CDM (on [−1, 1]) and MDM (logit of [0, 1]) dequantise through one function: the same generator gives the
    same u in both, bit for bit, and u stays in the pixel's bin."""
    from jdx.cdm import dequantize
    from jdx.dequantization import dequantize_unit
    from jdx.mdm.elbo import ALPHA
    x = torch.randint(0, 256, (4, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
    u = dequantize_unit(x, torch.Generator().manual_seed(1))
    pixel = ((x + 1) * 127.5).round()
    assert ((u * 256 >= pixel) & (u * 256 < pixel + 1)).all()
    assert torch.equal(dequantize(x, torch.Generator().manual_seed(1)), u * 2 - 1)
    x_logit, _ = dequantize_logit(x, torch.Generator().manual_seed(1))
    p = ALPHA + (1 - 2 * ALPHA) * u
    assert torch.equal(x_logit, torch.log(p) - torch.log1p(-p))
