"""WGAN-GP gradient penalty against critics whose input gradient is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medsynth.losses import GradientPenalty, gradient_norms, gradient_penalty


def linear_critic(w: list[float]) -> nn.Module:
    """f(x) = <w, x> + b on flattened (B, 1, 2, 2) images: its input gradient is w everywhere."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(len(w), 1))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([w]))
        net[1].bias.fill_(0.7)
    return net


def quadratic_critic(x: torch.Tensor) -> torch.Tensor:
    """f(x) = sum(x²) per sample, (B,): its input gradient is 2x."""
    return x.square().flatten(1).sum(1)


# (B, 1, 1, 2) images and fixed eps for the quadratic critic:
# sample 1: x̂ = 0.5*[1, 2] + 0.5*[3, 2] = [2, 2]     -> grad [4, 4], norm 4√2
# sample 2: x̂ = 0.25*[0, 3] + 0.75*[0, 1] = [0, 1.5] -> grad [0, 3], norm 3
REAL = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).reshape(2, 1, 1, 2)
FAKE = torch.tensor([[3.0, 2.0], [0.0, 1.0]]).reshape(2, 1, 1, 2)
EPS = torch.tensor([0.5, 0.25])
NORMS = [4 * math.sqrt(2), 3.0]


def images(seed: int, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 2, 2, generator=g), torch.randn(batch, 1, 2, 2, generator=g)


def test_linear_critic_penalty_is_exact_for_any_interpolation():
    critic = linear_critic([3.0, 4.0, 0.0, 0.0])  # ||w|| = 5
    for seed in range(3):
        real, fake = images(seed)
        # 10 * (5 - 1)² = 160, whatever eps was drawn
        assert gradient_penalty(critic, real, fake).item() == pytest.approx(160.0, rel=1e-6)
    # weight 1, centre 0: ||w||² = 25
    assert gradient_penalty(critic, real, fake, weight=1.0, center=0.0).item() == pytest.approx(25.0, rel=1e-6)


def test_quadratic_critic_penalty_matches_hand_computation():
    # 10 * mean((4√2 - 1)², (3 - 1)²) = 5 * ((33 - 8√2) + 4) = 5 * (37 - 8√2) ≈ 128.4315
    expected = 5 * (37 - 8 * math.sqrt(2))
    assert gradient_penalty(quadratic_critic, REAL, FAKE, eps=EPS).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(128.4315, abs=1e-4)
    torch.testing.assert_close(gradient_norms(quadratic_critic, REAL, FAKE, eps=EPS), torch.tensor(NORMS))
    # weight 1, centre 0: mean(32, 9) = 20.5
    assert gradient_penalty(quadratic_critic, REAL, FAKE, eps=EPS, weight=1.0, center=0.0).item() == pytest.approx(20.5)


def test_module_returns_the_penalty_and_keeps_the_mean_norm():
    gp = GradientPenalty()
    assert math.isnan(gp.last_grad_norm.item())
    penalty = gp(quadratic_critic, REAL, FAKE, eps=EPS)
    assert penalty.item() == pytest.approx(5 * (37 - 8 * math.sqrt(2)), rel=1e-6)
    assert gp.last_grad_norm.item() == pytest.approx((4 * math.sqrt(2) + 3) / 2, rel=1e-6)
    assert not gp.last_grad_norm.requires_grad
    assert "weight=10.0" in repr(gp)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        GradientPenalty(weight=-1.0)


def test_penalty_backward_reaches_critic_weights_but_not_the_generator():
    critic = linear_critic([3.0, 4.0, 0.0, 0.0])
    real, fake = images(0)
    fake.requires_grad_(True)
    gradient_penalty(critic, real, fake).backward()
    # d/dw 10 (||w|| - 1)² = 20 (||w|| - 1) w / ||w|| = 20 * 4 / 5 * w = 16 w
    torch.testing.assert_close(critic[1].weight.grad, torch.tensor([[48.0, 64.0, 0.0, 0.0]]))
    assert critic[1].bias.grad is None  # the bias does not enter the input gradient
    assert fake.grad is None  # real and fake are detached: the penalty trains the critic only


def test_conditional_critic_receives_labels():
    # f(x, y) = <w_y, x>: grad w_y per sample; ||w_0|| = 5, ||w_1|| = 1
    w = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])

    def critic(x, y):
        return (x.flatten(1) * w[y]).sum(1)

    real, fake = images(1, batch=2)
    # 10 * mean((5 - 1)², (1 - 1)²) = 10 * 8 = 80
    assert gradient_penalty(critic, real, fake, y=torch.tensor([0, 1])).item() == pytest.approx(80.0, rel=1e-6)
    assert GradientPenalty()(critic, real, fake, torch.tensor([1, 1])).item() == pytest.approx(0.0, abs=1e-6)


def test_tuple_critic_uses_the_adversarial_head_only():
    linear = linear_critic([3.0, 4.0, 0.0, 0.0])

    def acgan_critic(x):  # (logits, class_logits); the class head has a steep input gradient that must not count
        return linear(x), 100.0 * x.flatten(1)[:, :2]

    real, fake = images(2)
    assert gradient_penalty(acgan_critic, real, fake).item() == pytest.approx(160.0, rel=1e-6)


def test_generator_makes_the_draw_repeatable():
    real, fake = images(3, batch=4)
    first = gradient_penalty(quadratic_critic, real, fake, generator=torch.Generator().manual_seed(7))
    again = gradient_penalty(quadratic_critic, real, fake, generator=torch.Generator().manual_seed(7))
    other = gradient_penalty(quadratic_critic, real, fake, generator=torch.Generator().manual_seed(8))
    assert first.item() == again.item() != other.item()


def test_volumes_use_the_norm_over_all_non_batch_dims():
    # (B, C, D, H, W) with f = sum(x²): x̂ = 0.5*(1 + 3) = 2 in all 8 voxels, grad 4 each, norm √(8*16) = 8√2
    real, fake = torch.ones(2, 1, 2, 2, 2), torch.full((2, 1, 2, 2, 2), 3.0)
    norms = gradient_norms(quadratic_critic, real, fake, eps=torch.full((2,), 0.5))
    torch.testing.assert_close(norms, torch.full((2,), 8 * math.sqrt(2)))


def test_bad_inputs_are_refused_clearly():
    real, fake = images(0)
    with pytest.raises(ValueError, match=r"shapes must match: \(3, 1, 2, 2\) vs \(2, 1, 2, 2\)"):
        gradient_penalty(quadratic_critic, real, fake[:2])
    with pytest.raises(TypeError, match="real must be a floating-point image tensor"):
        gradient_penalty(quadratic_critic, real.to(torch.uint8), fake)
    with pytest.raises(TypeError, match="critic must return a logits tensor"):
        gradient_penalty(lambda x: [x.sum()], real, fake)
