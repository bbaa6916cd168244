
import pytest
import torch

from jdx.diffusion import Schedule, ScheduleConfig
from jdx.samplers import ddim, ddpm, timesteps

S = Schedule(ScheduleConfig(T=1000))  # ᾱ_T ≈ 4e-5: x_T ~ N(0, I) is the true marginal


def gaussian_eps(mu: float, s: float):
    """Exact E[ε | x_t] for data N(μ, s²): x_t ~ N(√ᾱ μ, ᾱ s² + 1 − ᾱ) → ε̂ = √(1−ᾱ)(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ)."""
    def eps_fn(x, t):
        a = S.alpha_bar[t]
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s ** 2 + 1 - a)
    return eps_fn


def test_timesteps():
    assert timesteps(10, 5) == [10, 8, 6, 4, 2, 0]
    assert timesteps(3, 50) == [3, 2, 1, 0]
    assert timesteps(200, 200) == list(range(200, -1, -1))
    with pytest.raises(ValueError):
        timesteps(0, 5)


def test_ddim_with_true_eps_inverts_forward_noising():
    """DDIM η = 0 over all T steps, given the true ε of a known x₀, lands exactly on x₀."""
    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    eps_true = lambda x, t: S.eps_from_x0(x, t, x0)
    x_T = S.noise_to(x0, S.T, torch.randn_like(x0))
    out = ddim(eps_true, x_T, timesteps(S.T, S.T), S, clip=False)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_ddim_edit_from_t_star_keeps_x0():
    x0 = torch.rand(2, 1, 3, 3) * 2 - 1
    x_t = S.noise_to(x0, 80, torch.randn_like(x0))
    out = ddim(lambda x, t: S.eps_from_x0(x, t, x0), x_t, timesteps(80, 20), S, clip=False)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampler,steps", [("ddpm", 1000), ("ddim", 250)])
def test_samplers_recover_gaussian_data(sampler, steps):
    mu, s = 0.4, 0.3
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(20000, 1, 1, 1, generator=g)
    fn = ddpm if sampler == "ddpm" else ddim
    out = fn(gaussian_eps(mu, s), x_T, timesteps(S.T, steps), S, clip=False, generator=g)
    assert out.mean().item() == pytest.approx(mu, abs=0.01)
    assert out.std().item() == pytest.approx(s, rel=0.03)


def test_ddpm_equals_ddim_eta_one():
    eps_fn = gaussian_eps(0.1, 0.5)
    x_T = torch.randn(8, 1, 2, 2)
    ts = timesteps(S.T, 25)
    a = ddpm(eps_fn, x_T, ts, S, generator=torch.Generator().manual_seed(3))
    b = ddim(eps_fn, x_T, ts, S, eta=1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_callback_records_every_step():
    seen = []
    ddim(gaussian_eps(0, 1), torch.randn(2, 1, 2, 2), timesteps(S.T, 10), S, callback=seen.append)
    assert [st.t for st in seen] == timesteps(S.T, 10)[:-1]
    assert all(st.x0_hat.shape == (2, 1, 2, 2) for st in seen)
    torch.testing.assert_close(seen[1].x_t, seen[0].x_next)


def test_seeded_sampling_is_deterministic():
    run = lambda: ddpm(gaussian_eps(0, 1), torch.zeros(4, 1, 2, 2), timesteps(S.T, 10), S,
                       generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_guided_fields_are_one_guided_step_in_both_spaces():
    """The Gradients view's fields: ε̂′ = ε̂ − s σ_t ∇log p, and the guided score equals −ε̂′/σ_t."""
    from jdx.guidance import guide, guided_eps, guided_fields
    s = Schedule(ScheduleConfig("linear", 100))
    t, scale = 40, 3.0
    g = torch.Generator().manual_seed(0)
    eps, grad = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    sigma = s.sigma(t)
    f = guided_fields(eps, s.score_from_eps(eps, t), grad, scale, sigma)
    torch.testing.assert_close(f.eps_guided, eps - scale * sigma * grad)
    torch.testing.assert_close(f.eps_shift, f.eps_guided - eps)
    torch.testing.assert_close(f.score_guided, s.score_from_eps(f.eps_guided, t))
    torch.testing.assert_close(f.score_shift, scale * grad)
    # guided_eps (what the samplers run) is the same algebra, bit for bit
    eps_fn = guided_eps(lambda x, t_: eps, lambda x, t_: grad, scale, s)
    assert torch.equal(eps_fn(eps, t), guide(eps, grad, scale, sigma))
