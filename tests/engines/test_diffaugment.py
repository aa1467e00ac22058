"""DiffAugment: shapes, gradients, translation and cutout geometry, colour refusal, determinism."""

from __future__ import annotations

import pytest
import torch

from medsynth.engines.diffaugment import DiffAugment, parse_policy, translate


@pytest.mark.parametrize("policy", ["translation,cutout", "color,translation,cutout", "cutout"])
def test_shape_dtype_and_gradient(policy: str) -> None:
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    out = DiffAugment(policy)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_a_pixel_within_the_bound() -> None:
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    out = DiffAugment("translation", translation_ratio=0.125)(x)  # shifts in [-2, 2]
    shifts = set()
    for img in out[:, 0]:
        (ys, xs) = torch.nonzero(img, as_tuple=True)
        assert len(ys) == 1 and img[ys[0], xs[0]] == 1.0  # moved, not blurred
        dy, dx = int(ys[0]) - 8, int(xs[0]) - 8
        assert abs(dy) <= 2 and abs(dx) <= 2
        shifts.add((dy, dx))
    assert len(shifts) > 5  # per-sample shifts


def test_translate_known_value_and_zero_fill() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = translate(x, torch.tensor([1]), torch.tensor([-1]))
    assert torch.equal(out[0, 0, 0], torch.zeros(4))  # row vacated at the top
    assert torch.equal(out[0, 0, 1:, :3], x[0, 0, :3, 1:]) and torch.equal(out[0, 0, :, 3], torch.zeros(4))


def test_cutout_zeroes_a_square_of_the_right_size() -> None:
    torch.manual_seed(0)
    x = torch.ones(8, 2, 16, 16)
    out = DiffAugment("cutout", cutout_ratio=0.5)(x)
    for img in out:
        assert torch.equal(img[0], img[1])  # same box in every channel
        ys, xs = torch.nonzero(img[0] == 0, as_tuple=True)
        assert len(ys) == 64 and ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7


def test_colour_refused_for_one_channel() -> None:
    with pytest.raises(ValueError, match="CT/X-ray; use translation,cutout"):
        DiffAugment("color")(torch.rand(2, 1, 8, 8))


@pytest.mark.parametrize("policy", ["", "none", "None"])
def test_identity_policy(policy: str) -> None:
    x = torch.rand(2, 1, 8, 8)
    assert DiffAugment(policy)(x) is x


def test_policy_as_a_sequence_as_fire_passes_it() -> None:
    """``--diffaugment translation,cutout`` on the bundle command line arrives as a tuple."""
    assert parse_policy(("translation", "cutout")) == parse_policy("translation,cutout") == ("translation", "cutout")
    assert parse_policy(None) == ()


def test_unknown_policy_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="color, translation, cutout"):
        parse_policy("translation,flip")


def test_seeded_determinism() -> None:
    x = torch.rand(4, 3, 16, 16)
    policy = "color,translation,cutout"
    torch.manual_seed(5)
    a = DiffAugment(policy)(x)
    torch.manual_seed(5)
    assert torch.equal(a, DiffAugment(policy)(x))
    b = DiffAugment(policy, generator=torch.Generator().manual_seed(1))(x)
    assert torch.equal(b, DiffAugment(policy, generator=torch.Generator().manual_seed(1))(x))
    assert not torch.equal(a, b)
