"""WGAN-GP networks: the critic refuses batch norm and scores each sample alone; the residual generator."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from medsynth.networks.dcgan import Discriminator, ResidualBlock
from medsynth.networks.wgan import Critic, ResidualGenerator, check_no_batch_norm


@pytest.mark.parametrize("norm", ["batch", "BATCH"])
def test_critic_refuses_batch_norm(norm):
    with pytest.raises(ValueError, match="a WGAN-GP critic cannot use batch normalisation: the gradient penalty"):
        Critic(image_size=32, base_channels=4, norm=norm)


def test_check_no_batch_norm_names_the_layer():
    with pytest.raises(ValueError, match=re.escape("cannot use batch normalisation (found at blocks.1.adn.N, ")):
        check_no_batch_norm(Discriminator(image_size=32, base_channels=4))
    disc = Discriminator(image_size=32, base_channels=4, norm="instance")
    assert check_no_batch_norm(disc) is disc


@pytest.mark.parametrize("norm", ["layer", "instance", None])
def test_critic_scores_each_sample_independently_of_the_batch(norm):
    # the gradient penalty needs d critic(x_i) / d x_i alone; batch norm (the contrast case) breaks that
    torch.manual_seed(0)
    critic = check_no_batch_norm(Critic(image_size=32, base_channels=4, norm=norm, num_classes=2, aux_classifier=True))
    batch_normed = Discriminator(image_size=32, base_channels=4, norm="batch")
    x = torch.randn(3, 3, 32, 32)
    other = torch.cat([x[:1], torch.randn(2, 3, 32, 32)])
    scores, class_logits = critic(x)
    assert scores.shape == (3,) and class_logits.shape == (3, 2)
    torch.testing.assert_close(critic(other)[0][0], scores[0])
    assert abs(batch_normed(other)[0] - batch_normed(x)[0]) > 1e-4


def test_critic_default_is_layer_norm():
    norms = [m for m in Critic(image_size=32, base_channels=4).modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 2 and all(m.num_groups == 1 for m in norms)  # blocks 2 and 3; none on the first


@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_residual_generator_shapes(image_size, channels):
    gen = ResidualGenerator(latent_size=8, image_size=image_size, channels=channels, num_blocks=3, base_channels=4,
                            residual_blocks=2, num_classes=2)
    images = gen(torch.randn(2, 8), torch.tensor([0, 1]))
    assert images.shape == (2, channels, image_size, image_size)
    assert sum(isinstance(m, ResidualBlock) for m in gen.modules()) == 3 * 2


def test_residual_generator_needs_a_residual_block():
    with pytest.raises(ValueError, match="residual_blocks >= 1, got 0"):
        ResidualGenerator(image_size=32, residual_blocks=0)


def test_residual_block_is_identity_when_its_branch_is_zero():
    block = ResidualBlock(4, norm="batch", act="relu")
    x = torch.randn(2, 4, 8, 8)
    assert not torch.allclose(block(x), x)
    with torch.no_grad():
        block.body.conv.weight.zero_()
        block.body.conv.bias.zero_()
    torch.testing.assert_close(block(x), x)
