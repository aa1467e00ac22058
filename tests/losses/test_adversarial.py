"""Adversarial losses against hand-computed values, torch's BCE and MONAI's PatchAdversarialLoss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss

from medsynth.losses import (
    LOSSES,
    DiscriminatorLoss,
    GeneratorLoss,
    auxiliary_classification_loss,
    discriminator_loss,
    generator_loss,
)

REAL = [2.0, -0.5]
FAKE = [-1.0, 0.5]


def softplus(x: float) -> float:
    """log(1 + e^x) = -log σ(-x), by hand."""
    return math.log1p(math.exp(x))


# (loss, D value, G value), worked out by hand for real = [2, -0.5], fake = [-1, 0.5]
HAND = [
    # hinge D: relu(1-2)=0, relu(1+0.5)=1.5 -> mean 0.75; fake: relu(1-1)=0, relu(1+0.5)=1.5 -> mean 0.75; sum 1.5
    # hinge G: -mean(-1, 0.5) = -(-0.25) = 0.25
    ("hinge", 1.5, 0.25),
    # wasserstein D: mean(fake) - mean(real) = -0.25 - 0.75 = -1.0;  G: -mean(fake) = 0.25
    ("wasserstein", -1.0, 0.25),
    # bce D: real target 1 -> -log σ(x) = softplus(-x): mean(softplus(-2), softplus(0.5)) ≈ (0.1269 + 0.9741)/2
    #        fake target 0 -> -log(1-σ(x)) = softplus(x): mean(softplus(-1), softplus(0.5)) ≈ (0.3133 + 0.9741)/2
    #        summed ≈ 0.5505 + 0.6437 = 1.1942
    # bce G (non-saturating): mean(softplus(1), softplus(-0.5)) ≈ (1.3133 + 0.4741)/2 ≈ 0.8937
    ("bce",
     (softplus(-2.0) + softplus(0.5)) / 2 + (softplus(-1.0) + softplus(0.5)) / 2,
     (softplus(1.0) + softplus(-0.5)) / 2),
    # mse D: 0.5*mean((2-1)², (-0.5-1)²) = 0.5*mean(1, 2.25) = 0.8125; 0.5*mean((-1)², 0.5²) = 0.5*0.625 = 0.3125
    #        sum 1.125
    # mse G: 0.5*mean((-1-1)², (0.5-1)²) = 0.5*mean(4, 0.25) = 1.0625
    ("mse", 1.125, 1.0625),
]


@pytest.mark.parametrize(("loss", "d_value", "g_value"), HAND)
def test_losses_match_hand_values(loss, d_value, g_value):
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    assert DiscriminatorLoss(loss)(real, fake).item() == pytest.approx(d_value, abs=1e-6)
    assert GeneratorLoss(loss)(fake).item() == pytest.approx(g_value, abs=1e-6)
    assert discriminator_loss(real, fake, loss).item() == pytest.approx(d_value, abs=1e-6)
    assert generator_loss(fake, loss).item() == pytest.approx(g_value, abs=1e-6)


def test_hand_table_covers_every_loss():
    assert tuple(loss for loss, _, _ in HAND) == LOSSES == ("hinge", "wasserstein", "bce", "mse")


@pytest.mark.parametrize(("loss", "d_value", "g_value"), HAND)
def test_any_shape_is_mean_reduced(loss, d_value, g_value):
    # patch maps (B, 1, H, W): each value repeated over a 2x3 patch leaves every mean unchanged;
    # the fake batch (4) differs from the real batch (2)
    real = torch.tensor(REAL).reshape(2, 1, 1, 1).expand(2, 1, 2, 3)
    fake = torch.tensor(FAKE * 2).reshape(4, 1, 1, 1).expand(4, 1, 2, 3)
    assert DiscriminatorLoss(loss)(real, fake).item() == pytest.approx(d_value, abs=1e-6)
    assert GeneratorLoss(loss)(fake).item() == pytest.approx(g_value, abs=1e-6)


def test_bce_label_smoothing_moves_only_the_real_target():
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    # bce(x, t) = t*softplus(-x) + (1-t)*softplus(x); t = 0.9 on real only
    # x=2:    0.9*0.12693 + 0.1*2.12693 = 0.32693;  x=-0.5: 0.9*0.97408 + 0.1*0.47408 = 0.92408 -> mean 0.62550
    # fake unchanged: mean(softplus(-1), softplus(0.5)) = 0.64367; total ≈ 1.26917
    real_term = sum(0.9 * softplus(-x) + 0.1 * softplus(x) for x in REAL) / 2
    fake_term = (softplus(-1.0) + softplus(0.5)) / 2
    assert DiscriminatorLoss("bce", real_label=0.9)(real, fake).item() == pytest.approx(real_term + fake_term, abs=1e-6)
    assert real_term + fake_term == pytest.approx(1.26917, abs=1e-5)


def test_bce_equals_torch_bce_with_logits_summed_over_real_and_fake():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(5, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    expected = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(DiscriminatorLoss("bce")(real, fake), expected)
    expected = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    torch.testing.assert_close(GeneratorLoss("bce")(fake), expected)


def test_matches_monai_patch_adversarial_loss_where_definitions_coincide():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(4, 1, 6, 6, generator=g), torch.randn(4, 1, 6, 6, generator=g)

    def monai(criterion, x, is_real, for_d, **kwargs):
        return PatchAdversarialLoss(criterion=criterion, **kwargs)(x, target_is_real=is_real, for_discriminator=for_d)

    # bce: MONAI applies sigmoid + BCELoss per call; we sum the real and fake calls (MONAI tutorials average them)
    torch.testing.assert_close(DiscriminatorLoss("bce")(real, fake),
                               monai("bce", real, True, True) + monai("bce", fake, False, True))
    torch.testing.assert_close(GeneratorLoss("bce")(fake), monai("bce", fake, True, False))
    # least_squares without its leaky-ReLU is MSE(x, target) with no ½: ours is exactly half of MONAI's
    lsq = {"no_activation_leastsq": True}
    torch.testing.assert_close(DiscriminatorLoss("mse")(real, fake),
                               0.5 * (monai("least_squares", real, True, True, **lsq)
                                      + monai("least_squares", fake, False, True, **lsq)))
    torch.testing.assert_close(GeneratorLoss("mse")(fake), 0.5 * monai("least_squares", fake, True, False, **lsq))
    # MONAI's hinge squashes logits through tanh first: our D hinge on tanh(logits) equals its real + fake calls.
    # (Its hinge generator loss is relu(1 - tanh(fake)), not -fake, so G is not comparable.)
    torch.testing.assert_close(DiscriminatorLoss("hinge")(real.tanh(), fake.tanh()),
                               monai("hinge", real, True, True) + monai("hinge", fake, False, True))


def test_non_saturating_bce_keeps_the_generator_gradient_where_d_rejects_the_fake():
    fake = torch.tensor([-20.0], requires_grad=True)
    GeneratorLoss("bce")(fake).backward()
    # d/dx -log σ(x) = σ(x) - 1 ≈ -1 at x = -20 (the saturating log(1 - σ(x)) would give -σ(x) ≈ -2e-9)
    assert fake.grad.item() == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize(("loss", "expected"), [
    ("hinge", [-0.5, -0.5]),        # d/dx -mean(x) = -1/N
    ("wasserstein", [-0.5, -0.5]),
    ("mse", [-1.0, -0.25]),         # d/dx 0.5*mean((x-1)²) = (x - 1)/N: (-1-1)/2, (0.5-1)/2
])
def test_generator_gradient_pushes_fake_logits_up(loss, expected):
    fake = torch.tensor(FAKE, requires_grad=True)
    GeneratorLoss(loss)(fake).backward()
    torch.testing.assert_close(fake.grad, torch.tensor(expected))


def test_hinge_discriminator_ignores_logits_beyond_the_margin():
    real, fake = torch.tensor(REAL, requires_grad=True), torch.tensor(FAKE, requires_grad=True)
    DiscriminatorLoss("hinge")(real, fake).backward()
    # real 2.0 is past the margin (grad 0); real -0.5 inside: -1/2.  fake -1.0 on the margin edge (relu'(0)=0);
    # fake 0.5 inside: +1/2
    torch.testing.assert_close(real.grad, torch.tensor([0.0, -0.5]))
    torch.testing.assert_close(fake.grad, torch.tensor([0.0, 0.5]))


@pytest.mark.parametrize("make", [DiscriminatorLoss, GeneratorLoss])
def test_unknown_loss_name_is_refused_at_construction(make):
    with pytest.raises(ValueError, match=r"^unknown loss 'hing'; choose one of hinge, wasserstein, bce, mse$"):
        make("hing")


def test_unknown_loss_name_is_refused_by_the_functions():
    with pytest.raises(ValueError, match="unknown loss 'lsgan'; choose one of hinge, wasserstein, bce, mse"):
        discriminator_loss(torch.zeros(2), torch.zeros(2), "lsgan")
    with pytest.raises(ValueError, match="unknown loss 'BCE'"):
        generator_loss(torch.zeros(2), "BCE")


def test_label_smoothing_is_refused_outside_bce_and_outside_the_unit_interval():
    with pytest.raises(ValueError, match="applies to loss 'bce' only"):
        DiscriminatorLoss("hinge", real_label=0.9)
    with pytest.raises(ValueError, match=r"real_label must lie in \(0, 1\]"):
        DiscriminatorLoss("bce", real_label=1.5)


def test_non_float_logits_raise_type_error():
    with pytest.raises(TypeError, match="real_logits must be a floating-point tensor.*torch.int64"):
        DiscriminatorLoss()(torch.tensor([1, 2]), torch.zeros(2))
    with pytest.raises(TypeError, match="fake_logits must be a torch.Tensor"):
        GeneratorLoss("mse")([0.5, 1.0])
    with pytest.raises(ValueError, match="fake_logits is empty"):
        generator_loss(torch.zeros(0), "bce")


def test_auxiliary_classification_loss_is_mean_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    # sample 1: -log(e²/(e²+1)) = log(1 + e^-2); sample 2: -log(1/(1+e)) = log(1 + e); mean of the two
    expected = (softplus(-2.0) + softplus(1.0)) / 2
    assert auxiliary_classification_loss(logits, labels).item() == pytest.approx(expected, abs=1e-6)


def test_auxiliary_classification_loss_checks_its_inputs():
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        auxiliary_classification_loss(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected class_logits \(B, K\) and labels \(B,\)"):
        auxiliary_classification_loss(torch.zeros(2, 3), torch.tensor([0, 1, 2]))


def test_modules_name_their_loss():
    assert "loss='wasserstein'" in repr(DiscriminatorLoss("wasserstein"))
    assert "real_label=0.9" in repr(DiscriminatorLoss("bce", real_label=0.9))
    assert "loss='mse'" in repr(GeneratorLoss("mse"))
