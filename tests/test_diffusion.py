import math

import pytest
import torch

from jdx.diffusion import Schedule, ScheduleConfig


def test_linear_alpha_bar_is_product_of_alphas():
    s = Schedule(ScheduleConfig("linear", T=100, beta_start=1e-4, beta_end=0.02))
    betas = torch.linspace(1e-4, 0.02, 100, dtype=torch.float64)
    expected = torch.cumprod(1 - betas, 0)
    assert s.alpha_bar[0] == 1 and s.beta[0] == 0
    torch.testing.assert_close(s.alpha_bar[1:].double(), expected, rtol=1e-6, atol=1e-7)


def test_cosine_alpha_bar_follows_formula():
    T, off = 200, 0.008
    s = Schedule(ScheduleConfig("cosine", T=T))
    f = lambda t: math.cos((t / T + off) / (1 + off) * math.pi / 2) ** 2
    for t in (1, 50, 100, 150):
        assert s.alpha_bar[t].item() == pytest.approx(f(t) / f(0), rel=1e-5)
    assert s.alpha_bar[T] < 1e-3 and torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="unknown schedule"):
        Schedule(ScheduleConfig("quadratic"))


def test_noise_to_has_the_right_moments():
    s = Schedule(ScheduleConfig(T=100))
    x0 = torch.full((200_000,), 0.7)
    t = 60
    x_t = s.noise_to(x0, t, torch.randn_like(x0))
    a = s.alpha_bar[t].item()
    assert x_t.mean().item() == pytest.approx(math.sqrt(a) * 0.7, abs=0.01)
    assert x_t.var().item() == pytest.approx(1 - a, rel=0.02)


def test_posterior_matches_bayes_rule():
    """q(x_{t−1} | x_t, x₀) ∝ N(x_t; √α_t x_{t−1}, β_t) · N(x_{t−1}; √ᾱ_{t−1} x₀, 1 − ᾱ_{t−1})."""
    s = Schedule(ScheduleConfig(T=100))
    x0, x_t = torch.tensor([0.3]), torch.tensor([-0.8])
    first = s.posterior(x0, x_t, 1)               # ᾱ₀ = 1: the step to t = 0 lands on x₀ exactly
    assert first.mean.item() == pytest.approx(0.3, abs=1e-6) and first.variance.item() == 0
    for t in (2, 37, 100):
        beta, a_prev = s.beta[t].double(), s.alpha_bar[t - 1].double()
        precision = (1 - beta) / beta + 1 / (1 - a_prev)
        var = 1 / precision
        mean = var * ((1 - beta).sqrt() * x_t.double() / beta + a_prev.sqrt() * x0.double() / (1 - a_prev))
        post = s.posterior(x0, x_t, t)
        assert post.variance.item() == pytest.approx(var.item(), rel=1e-3)
        assert post.mean.item() == pytest.approx(mean.item(), rel=1e-3, abs=1e-6)


def test_x0_and_eps_conversions_are_inverse():
    s = Schedule(ScheduleConfig(T=100))
    x0, eps = torch.randn(4, 1, 5, 5), torch.randn(4, 1, 5, 5)
    t = torch.tensor([1, 10, 50, 99])
    x_t = s.noise_to(x0, t, eps)
    torch.testing.assert_close(s.x0_from_eps(x_t, t, eps), x0, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(s.eps_from_x0(x_t, t, x0), eps, atol=2e-4, rtol=1e-4)


def test_snr_decreases():
    s = Schedule(ScheduleConfig(T=100))
    snr = s.snr(torch.arange(1, 101))
    assert torch.all(snr[1:] < snr[:-1])
