import pytest
import torch

from jdx.diffusion import Schedule, ScheduleConfig
from jdx.guidance import class_mixture_grad, guided_eps, mixture_weights, one_hot
from jdx.joint import HeadConfig, JointModel, JointObjective
from jdx.unet import UNet, UNetConfig

CFG = UNetConfig(image_size=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,))


def test_unet_shapes_and_feature_blocks():
    net = UNet(CFG).eval()
    out = net(torch.randn(3, 1, 16, 16), torch.tensor([0, 5, 9]), return_features=True)
    assert out.out.shape == (3, 1, 16, 16)
    assert len(out.features) == len(net.block_names)
    assert net.block_names[net.num_encoder_blocks] == "mid"
    assert [f.shape[1] for f in out.features[: net.num_encoder_blocks]] == net.encoder_channels
    assert out.features[net.num_encoder_blocks].shape[-1] == 8      # bottleneck at 16 / 2
    assert net(torch.randn(1, 1, 16, 16), torch.tensor([1])).features == []


def test_unet_without_time_input():
    net = UNet(UNetConfig(**{**CFG.to_dict(), "time_input": False}))
    assert net(torch.randn(2, 1, 16, 16)).out.shape == (2, 1, 16, 16)


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError, match="divisible"):
        UNet(UNetConfig(image_size=15, channel_mult=(1, 2)))


def test_joint_forward_and_classify_agree():
    m = JointModel(CFG, ScheduleConfig(T=50), HeadConfig(num_classes=4)).eval()
    x, t = torch.randn(5, 1, 16, 16), torch.tensor([0, 1, 2, 3, 4])
    torch.testing.assert_close(m(x, t).logits, m.classify(x, t))
    p = m.predict(x)
    assert p.shape == (5, 4) and torch.allclose(p.sum(-1), torch.ones(5))


def test_one_encoder_pass_gives_eps_logits_and_the_guidance_gradient():
    """eps_logits_guidance (the app's guided Denoise step) equals the joint forward with autograd over the whole
    U-Net: the same ε̂ and logits, and the same ∇_x Σ_k w_k log p(k | x_t, t), row by row."""
    torch.manual_seed(0)
    m = JointModel(CFG, ScheduleConfig(T=50), HeadConfig(num_classes=4)).eval()
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([5, 20, 40])
    w = torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 1.0]])
    eps, logits, grad = m.eps_logits_guidance(x, t, w)
    x_in = x.clone().requires_grad_(True)
    out = m(x_in, t)
    (expected,) = torch.autograd.grad((w * torch.log_softmax(out.logits, -1)).sum(), x_in)
    torch.testing.assert_close(eps, out.eps.detach())
    torch.testing.assert_close(logits, out.logits.detach())
    torch.testing.assert_close(grad, expected)
    assert not eps.requires_grad and grad.abs().sum() > 0


def test_joint_objective_backpropagates_into_every_parameter():
    m = JointModel(CFG, ScheduleConfig(T=50), HeadConfig(num_classes=4))
    out = JointObjective(m, lam=0.1)(torch.randn(8, 1, 16, 16), torch.randn(8, 1, 16, 16), torch.randint(0, 4, (8,)))
    out.loss.backward()
    assert all(p.grad is not None for p in m.parameters())
    assert out.count == 8 and 0 <= out.correct <= 8


def test_mixture_weights_validation():
    torch.testing.assert_close(mixture_weights([1, 3], 2), torch.tensor([0.25, 0.75]))
    for bad in ([1, 2, 3], [0, 0], [-1, 2]):
        with pytest.raises(ValueError):
            mixture_weights(bad, 2)
    with pytest.raises(ValueError):
        one_hot(5, 3)


def test_class_mixture_grad_matches_closed_form():
    """Linear logits W x: ∇_x Σ_k w_k log softmax(Wx)_k = Wᵀ(w − softmax(Wx))."""
    W = torch.randn(3, 4)
    logits_fn = lambda x, t: x.flatten(1) @ W.T
    x = torch.randn(2, 1, 2, 2)
    w = torch.tensor([0.2, 0.0, 0.8])
    grad = class_mixture_grad(logits_fn, w)(x, 7)
    p = torch.softmax(x.flatten(1) @ W.T, -1)
    torch.testing.assert_close(grad.flatten(1), (w - p) @ W)


def test_guidance_raises_target_probability():
    """One guided DDIM-style x̂₀ step must make the target more probable (the sign the paper warns about)."""
    schedule = Schedule(ScheduleConfig(T=100))
    W = torch.randn(3, 4)
    logits_fn = lambda x, t: x.flatten(1) @ W.T
    x = torch.randn(16, 1, 2, 2)
    eps_fn = lambda x, t: torch.zeros_like(x)
    target = 2
    guided = guided_eps(eps_fn, class_mixture_grad(logits_fn, one_hot(target, 3)), 0.5, schedule)
    x0_plain = schedule.x0_from_eps(x, 50, eps_fn(x, 50))
    x0_guided = schedule.x0_from_eps(x, 50, guided(x, 50))
    p = lambda z: torch.softmax(logits_fn(z, None), -1)[:, target]
    assert (p(x0_guided) > p(x0_plain)).all()
