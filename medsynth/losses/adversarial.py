"""Adversarial losses: hinge, wasserstein, bce (non-saturating), mse (LSGAN), and the AC-GAN class term.

One signature per role: a discriminator loss takes ``(real_logits, fake_logits)``, a generator
loss takes ``(fake_logits)``. Logits are raw critic outputs (no sigmoid, no tanh) of any shape, ``(B,)``,
``(B, 1)`` or a patch map ``(B, 1, H, W)``; every term is a mean over all elements, so real and fake batches
may differ in size. Each returns a scalar that the network minimises.

==============  ============================================  ==============================
loss            discriminator (minimised)                     generator (minimised)
==============  ============================================  ==============================
hinge           mean(relu(1 - real)) + mean(relu(1 + fake))   -mean(fake)
wasserstein     mean(fake) - mean(real)                       -mean(fake)
bce             bce(real, 1) + bce(fake, 0)                   bce(fake, 1) = mean(-log σ(fake))
mse             ½ mean((real - 1)²) + ½ mean(fake²)           ½ mean((fake - 1)²)
==============  ============================================  ==============================

Conventions (the numbers a config switch changes, so they are fixed here once):

- **The two discriminator terms are summed**, for every loss except where the paper itself puts ½ (mse).
  That is Goodfellow et al.'s value function E[log D(x)] + E[log(1 - D(G(z)))] and the PyTorch DCGAN
  tutorial's ``errD_real + errD_fake``, and it keeps bce on the same scale as hinge and wasserstein, which
  are sums by definition. MONAI's tutorials average ``PatchAdversarialLoss`` on real and fake instead
  (half of our bce and hinge values); with Adam the factor only matters relative to the gradient penalty
  and the AC-GAN class term.
- **bce is the non-saturating loss**: the generator minimises -log σ(fake), not log(1 - σ(fake)), so its
  gradient stays near -1 where the discriminator confidently rejects a sample (the saturating form's
  gradient vanishes there). ``real_label < 1`` gives one-sided label smoothing (Salimans et al. 2016):
  only the discriminator's real targets move; fake targets stay 0 and the generator's target stays 1.
- **mse is LSGAN with a, b, c = 0, 1, 1** (Mao et al. 2017, eq. 9, the "0-1 coding"): the discriminator
  pulls fake to a = 0 and real to b = 1, the generator pulls fake to c = 1, and both objectives keep the
  paper's ½ factors. The other choice in the paper, a, b, c = -1, 1, 0 (eq. 8, Pearson χ²), is not offered.
- **wasserstein** is the critic loss alone; add :func:`medsynth.losses.gradient_penalty` for WGAN-GP.

A cross-check against MONAI's ``PatchAdversarialLoss`` (see the tests): it squashes logits through tanh
(hinge) or leaky ReLU (least_squares, unless ``no_activation_leastsq=True``) before the loss, its mse has
no ½, and its hinge generator loss is relu(1 - tanh(fake)) rather than -fake.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSSES = ("hinge", "wasserstein", "bce", "mse")


def check_loss_name(loss: str) -> str:
    """Return ``loss`` if it is one of :data:`LOSSES`; otherwise raise ``ValueError`` listing them."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return loss


def _check_logits(name: str, logits: Tensor) -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of raw logits, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of raw logits, got dtype {logits.dtype}")
    if logits.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(logits.shape)}); a loss needs at least one logit")


def _check_real_label(loss: str, real_label: float) -> None:
    if real_label != 1.0 and loss != "bce":
        raise ValueError(f"real_label (one-sided label smoothing) applies to loss 'bce' only, not {loss!r}")
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"real_label must lie in (0, 1], got {real_label}")


def _hinge_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _wasserstein_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    return fake.mean() - real.mean()


def _bce_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    real_term = F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
    return real_term + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def _mse_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    return 0.5 * (real - 1.0).square().mean() + 0.5 * fake.square().mean()


def _minus_mean_g(fake: Tensor) -> Tensor:  # hinge and wasserstein generators coincide
    return -fake.mean()


def _bce_g(fake: Tensor) -> Tensor:  # non-saturating: -log σ(fake)
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def _mse_g(fake: Tensor) -> Tensor:
    return 0.5 * (fake - 1.0).square().mean()


_DISCRIMINATOR: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "hinge": _hinge_d, "wasserstein": _wasserstein_d, "bce": _bce_d, "mse": _mse_d,
}
_GENERATOR: dict[str, Callable[[Tensor], Tensor]] = {
    "hinge": _minus_mean_g, "wasserstein": _minus_mean_g, "bce": _bce_g, "mse": _mse_g,
}


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, loss: str = "hinge", *,
                       real_label: float = 1.0) -> Tensor:
    """Discriminator (critic) loss to minimise, a scalar; see the module table for each ``loss``.

    Args:
        real_logits: raw discriminator outputs on real images, any shape, e.g. ``(B,)`` or ``(B, 1, H, W)``.
        fake_logits: raw outputs on generated images, any shape; the batch size may differ from real's.
        loss: one of :data:`LOSSES`.
        real_label: target for real logits under ``"bce"`` (one-sided label smoothing, e.g. 0.9).
    """
    check_loss_name(loss)
    _check_real_label(loss, real_label)
    _check_logits("real_logits", real_logits)
    _check_logits("fake_logits", fake_logits)
    return _DISCRIMINATOR[loss](real_logits, fake_logits, real_label)


def generator_loss(fake_logits: Tensor, loss: str = "hinge") -> Tensor:
    """Generator loss to minimise, a scalar, from the discriminator's raw ``fake_logits`` (any shape)."""
    check_loss_name(loss)
    _check_logits("fake_logits", fake_logits)
    return _GENERATOR[loss](fake_logits)


class DiscriminatorLoss(nn.Module):
    """``DiscriminatorLoss(loss)(real_logits, fake_logits) -> scalar``; the name is checked here, once.

    Args:
        loss: one of :data:`LOSSES`; an unknown name raises ``ValueError`` listing the valid ones.
        real_label: bce only: the real target, < 1 for one-sided label smoothing (Salimans et al. 2016).
    """

    def __init__(self, loss: str = "hinge", *, real_label: float = 1.0) -> None:
        super().__init__()
        self.loss = check_loss_name(loss)
        _check_real_label(loss, real_label)
        self.real_label = float(real_label)

    def forward(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Raw logits of any shape (``(B,)``, ``(B, 1, H, W)`` …) in, a scalar out."""
        _check_logits("real_logits", real_logits)
        _check_logits("fake_logits", fake_logits)
        return _DISCRIMINATOR[self.loss](real_logits, fake_logits, self.real_label)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}" + (f", real_label={self.real_label}" if self.real_label != 1.0 else "")


class GeneratorLoss(nn.Module):
    """``GeneratorLoss(loss)(fake_logits) -> scalar``; the name is checked here, once."""

    def __init__(self, loss: str = "hinge") -> None:
        super().__init__()
        self.loss = check_loss_name(loss)

    def forward(self, fake_logits: Tensor) -> Tensor:
        """Raw discriminator logits on generated images, any shape, in; a scalar out."""
        _check_logits("fake_logits", fake_logits)
        return _GENERATOR[self.loss](fake_logits)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}"


def auxiliary_classification_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    """AC-GAN's class term: mean cross-entropy of the auxiliary head, a scalar.

    Odena et al. 2017: D maximises log P(C=c | real) + log P(C=c | fake) and G maximises log P(C=c | fake),
    so the discriminator adds this loss on real images (true labels) and on fakes (the labels they were
    generated from), and the generator adds it on fakes; both minimise it alongside their adversarial loss.

    Args:
        class_logits: ``(B, K)`` raw class scores from the auxiliary head.
        labels: ``(B,)`` integer class indices in ``[0, K)``.
    """
    _check_logits("class_logits", class_logits)
    integer = isinstance(labels, Tensor) and not (labels.is_floating_point() or labels.is_complex())
    if not integer or labels.dtype == torch.bool:
        kind = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an integer tensor of class indices, got {kind}")
    if class_logits.dim() != 2 or labels.shape != class_logits.shape[:1]:
        raise ValueError(f"expected class_logits (B, K) and labels (B,), got {tuple(class_logits.shape)} "
                         f"and {tuple(labels.shape)}")
    return F.cross_entropy(class_logits, labels.long())
