"""DCGAN generator and discriminator: sizes, conditioning, ACGAN head, spectral norm, dropout, init, bad options."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from medsynth.networks.dcgan import Discriminator, Generator, block_layout, dcgan_init

# the bone-fracture study's Keras summary (Ibrahim & Bukhari): parameters of each layer with weights, in order
KERAS_GENERATOR = [1_056_768, 262_272, 524_544, 2_097_664, 38_403]  # dense, 3 transposed convs, conv
KERAS_DISCRIMINATOR = [3_136, 131_200, 262_272, 8_193]  # 3 convs, dense
BONE_GENERATOR = dict(
    latent_size=128, image_size=64, num_blocks=3, start_channels=128, channels_per_block=[128, 256, 512],
    norm=None, act="leakyrelu", out_kernel_size=5, activate_projection=False,
)
BONE_DISCRIMINATOR = dict(image_size=64, num_blocks=3, channels_per_block=[64, 128, 128], norm=None, dropout=0.2)
WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def layer_params(net: nn.Module) -> list[int]:
    """Parameter count of each conv / linear / embedding layer, in module order."""
    return [sum(p.numel() for p in m.parameters()) for m in net.modules() if isinstance(m, WEIGHTED)]


def largest_singular_value(weight: torch.Tensor, transposed: bool = False) -> float:
    """sigma_max of a weight as the (out, in*k*k) matrix spectral norm uses; ``transposed``: (in, out, k, k)."""
    weight = weight.detach().transpose(0, 1) if transposed else weight.detach()
    return torch.linalg.matrix_norm(weight.flatten(1), ord=2).item()


@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_blocks", [2, 3, 4, None])
def test_generator_and_discriminator_shapes(image_size, channels, num_blocks):
    gen = Generator(latent_size=8, image_size=image_size, channels=channels, num_blocks=num_blocks, base_channels=4)
    disc = Discriminator(image_size=image_size, channels=channels, num_blocks=num_blocks, base_channels=4)
    images = gen(torch.randn(2, 8))
    assert images.shape == (2, channels, image_size, image_size)
    assert images.abs().max() <= 1.0  # tanh
    assert disc(images).shape == (2,)
    expected_blocks = num_blocks or {32: 3, 64: 4, 128: 5}[image_size]
    assert len(gen.blocks) == len(disc.blocks) == expected_blocks


@pytest.mark.parametrize(
    ("image_size", "num_blocks", "start_size", "expected"),
    [(32, None, None, (3, 4)), (128, None, None, (5, 4)), (64, 2, None, (2, 16)), (64, None, 8, (3, 8))],
)
def test_block_layout(image_size, num_blocks, start_size, expected):
    assert block_layout(image_size, num_blocks, start_size) == expected


@pytest.mark.parametrize(
    "kwargs", [dict(image_size=100), dict(image_size=64, num_blocks=3, start_size=4), dict(num_blocks=0)]
)
def test_impossible_image_size_is_refused(kwargs):
    with pytest.raises(ValueError, match=r"cannot make image_size=\d+ from start_size=.* and num_blocks="):
        Generator(**kwargs)
    if "start_size" not in kwargs:
        with pytest.raises(ValueError, match="cannot make image_size"):
            Discriminator(**kwargs)


@pytest.mark.parametrize(
    ("net", "option", "message"),
    [
        (Generator, "norm", "unknown norm 'bogus'; valid names: 'batch', 'instance', 'layer', None"),
        (Generator, "act", "unknown act 'bogus'; valid names: 'relu', 'leakyrelu', 'elu', 'gelu', 'prelu'"),
        (Generator, "out_act", "unknown out_act 'bogus'; valid names: 'tanh', 'sigmoid', None"),
        (Discriminator, "conditioning", "unknown conditioning 'bogus'; valid names: None, 'projection', 'concat'"),
        (Discriminator, "norm", "unknown norm 'bogus'"),
    ],
)
def test_unknown_option_names_are_listed(net, option, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        net(**{option: "bogus"})


def test_option_names_ignore_case_and_accept_none():
    disc = Discriminator(image_size=32, base_channels=4, norm="None", act="LeakyReLU", conditioning="NONE")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in disc.modules())
    assert disc.conditioning is None


def test_discriminator_skips_norm_on_its_first_block():
    disc = Discriminator(image_size=32, base_channels=4, norm="batch")
    has_norm = [any(isinstance(m, nn.BatchNorm2d) for m in block.modules()) for block in disc.blocks]
    assert has_norm == [False, True, True]


def test_channels_per_block_must_match_num_blocks():
    with pytest.raises(ValueError, match="channels_per_block has 2 entries but the network has 3 blocks"):
        Generator(image_size=32, num_blocks=3, channels_per_block=[8, 4])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_classes=3), "num_classes=3 but the discriminator does not use labels"),
        (dict(conditioning="projection"), "needs num_classes >= 1, got 0"),
        (dict(aux_classifier=True, num_classes=1), "needs num_classes >= 2, got 1"),
    ],
)
def test_discriminator_class_options_must_agree(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Discriminator(image_size=32, base_channels=4, **kwargs)


def test_conditional_generator_output_depends_on_label():
    gen = Generator(latent_size=8, image_size=32, base_channels=4, num_classes=3).eval()
    z = torch.randn(1, 8).expand(3, 8)
    images = gen(z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[1], images[2])
    plain = Generator(latent_size=8, image_size=32, base_channels=4).eval()
    assert torch.equal(plain(z, torch.tensor([0, 1, 2]))[0], plain(z)[0])  # unconditional: y is ignored


def test_projection_discriminator_adds_embedding_dot_features():
    disc = Discriminator(image_size=32, base_channels=4, num_classes=3, conditioning="projection").eval()
    x = torch.randn(1, 3, 32, 32).expand(2, -1, -1, -1)
    y = torch.tensor([0, 2])
    logits = disc(x, y)
    phi = disc.blocks(x).flatten(1)
    expected = disc.adversarial(phi).squeeze(1) + (disc.embed(y) * phi).sum(1)
    torch.testing.assert_close(logits, expected)
    assert abs(logits[0] - logits[1]) > 1e-4


def test_concat_discriminator_output_depends_on_label():
    disc = Discriminator(image_size=32, base_channels=4, num_classes=3, conditioning="concat").eval()
    assert disc.blocks[0].conv.in_channels == 3 + 3
    logits = disc(torch.randn(1, 3, 32, 32).expand(2, -1, -1, -1), torch.tensor([0, 1]))
    assert abs(logits[0] - logits[1]) > 1e-4


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (Discriminator(image_size=32, base_channels=4, num_classes=2, conditioning="projection"),
         "this discriminator is class-conditional (projection); pass labels y"),
        (Discriminator(image_size=32, base_channels=4, num_classes=2, conditioning="concat"),
         "this discriminator is class-conditional (concat); pass labels y"),
        (Generator(latent_size=8, image_size=32, base_channels=4, num_classes=2),
         "this generator is class-conditional (label embedding, 2 classes); pass labels y"),
    ],
)
def test_conditional_network_without_labels_is_refused(net, message):
    inputs = torch.randn(2, 8) if isinstance(net, Generator) else torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match=re.escape(message)):
        net(inputs)
    with pytest.raises(ValueError, match=re.escape("labels y must have shape (B,) = (2,), got [2, 1]")):
        net(inputs, torch.zeros(2, 1, dtype=torch.long))


def test_wrong_input_shapes_are_refused():
    with pytest.raises(ValueError, match=re.escape("latent z must have shape (B, 8), got [2, 9]")):
        Generator(latent_size=8, image_size=32, base_channels=4)(torch.randn(2, 9))
    with pytest.raises(ValueError, match=re.escape("images must have shape (B, 3, 32, 32), got [2, 1, 32, 32]")):
        Discriminator(image_size=32, base_channels=4)(torch.randn(2, 1, 32, 32))


def test_generator_accepts_dcgan_style_latent():
    gen = Generator(latent_size=8, image_size=32, base_channels=4).eval()
    z = torch.randn(2, 8)
    torch.testing.assert_close(gen(z[:, :, None, None]), gen(z))


def test_acgan_head_returns_adversarial_and_class_logits():
    disc = Discriminator(image_size=32, base_channels=4, num_classes=3, aux_classifier=True)
    logits, class_logits = disc(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4,) and class_logits.shape == (4, 3)


def test_spectral_norm_bounds_largest_singular_value():
    disc = Discriminator(image_size=32, base_channels=8, num_classes=2, conditioning="projection", spectral_norm=True)
    gen = Generator(latent_size=8, image_size=32, base_channels=8, spectral_norm=True)
    layers = [m for net in (disc, gen) for m in net.modules() if isinstance(m, WEIGHTED)]
    assert len(layers) == 10 and all(parametrize.is_parametrized(m, "weight") for m in layers)  # incl. embedding
    conv, transposed = disc.blocks[1].conv, gen.blocks[0].conv
    with torch.no_grad():
        for layer in (conv, transposed):
            layer.parametrizations.weight.original.mul_(5.0)
        for _ in range(20):  # power iteration runs once per forward in train mode
            disc(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
            gen(torch.randn(2, 8))
    for layer, transposed_weight in ((conv, False), (transposed, True)):
        assert largest_singular_value(layer.weight, transposed_weight) == pytest.approx(1.0, abs=0.03)
        raw = layer.parametrizations.weight.original  # the bound comes from the parametrization, not the weights
        assert largest_singular_value(raw, transposed_weight) > 2.0


def test_dropout_acts_only_in_train_mode():
    disc = Discriminator(image_size=32, base_channels=4, norm=None, dropout=0.5)
    gen = Generator(latent_size=8, image_size=32, base_channels=4, norm=None, dropout=0.5)
    x, z = torch.randn(4, 3, 32, 32), torch.randn(4, 8)
    assert not torch.equal(disc(x), disc(x)) and not torch.equal(gen(z), gen(z))
    disc.eval()
    gen.eval()
    assert torch.equal(disc(x), disc(x)) and torch.equal(gen(z), gen(z))


def test_bone_fracture_gan_matches_the_keras_summary():
    gen, disc = Generator(**BONE_GENERATOR), Discriminator(**BONE_DISCRIMINATOR)
    assert layer_params(gen) == KERAS_GENERATOR and sum(KERAS_GENERATOR) == 3_979_651
    assert layer_params(disc) == KERAS_DISCRIMINATOR and sum(KERAS_DISCRIMINATOR) == 404_801
    assert sum(p.numel() for p in gen.parameters()) == 3_979_651
    assert sum(p.numel() for p in disc.parameters()) == 404_801
    assert [type(m) for m in gen.project.adn] == []  # Keras' Dense has no activation before the reshape
    assert sum(isinstance(m, nn.LeakyReLU) for m in gen.modules()) == 3
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in [*gen.modules(), *disc.modules()])
    images = gen(torch.randn(2, 128))
    assert images.shape == (2, 3, 64, 64)
    assert [tuple(gen.blocks[:i](gen.project(torch.randn(1, 128))).shape[1:]) for i in range(4)] == [
        (128, 8, 8), (128, 16, 16), (256, 32, 32), (512, 64, 64),
    ]
    assert disc(images).shape == (2,)
    assert tuple(disc.blocks(images).shape[1:]) == (128, 8, 8)


def test_dcgan_init_statistics():
    gen = Generator(image_size=32)  # its first transposed conv holds 512 * 256 * 16 = 2.1M weights
    disc = Discriminator(image_size=32, base_channels=16, spectral_norm=True)
    gen.apply(dcgan_init)
    disc.apply(dcgan_init)
    weight = gen.blocks[0].conv.weight
    assert weight.numel() > 2_000_000
    assert weight.std().item() == pytest.approx(0.02, rel=0.01) and abs(weight.mean().item()) < 1e-3
    assert torch.all(gen.blocks[0].conv.bias == 0)
    norms = torch.cat([m.weight for m in gen.modules() if isinstance(m, nn.BatchNorm2d)])
    assert norms.mean().item() == pytest.approx(1.0, abs=0.005) and norms.std().item() == pytest.approx(0.02, rel=0.1)
    raw = disc.blocks[1].conv.parametrizations.weight.original
    assert raw.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_generator_scripts_for_ckpt_export():
    gen = Generator(latent_size=8, image_size=32, base_channels=4, num_classes=2).eval()
    z, y = torch.randn(2, 8), torch.tensor([0, 1])
    scripted = torch.jit.script(gen)  # monai.bundle ckpt_export scripts unless told to trace
    torch.testing.assert_close(scripted(z, y), gen(z, y))
    with pytest.raises(Exception, match="pass labels y"):
        scripted(z)
