"""Losses for GAN training: adversarial (hinge, wasserstein, bce, mse), AC-GAN class term, gradient penalty.

Discriminator losses take ``(real_logits, fake_logits)``, generator losses ``(fake_logits)``; a loss name is
checked once, with a message listing :data:`LOSSES`.
"""

from __future__ import annotations

from medsynth.losses.adversarial import (
    LOSSES,
    DiscriminatorLoss,
    GeneratorLoss,
    auxiliary_classification_loss,
    check_loss_name,
    discriminator_loss,
    generator_loss,
)
from medsynth.losses.gradient_penalty import GradientPenalty, gradient_norms, gradient_penalty

__all__ = [
    "LOSSES",
    "DiscriminatorLoss",
    "GeneratorLoss",
    "GradientPenalty",
    "auxiliary_classification_loss",
    "check_loss_name",
    "discriminator_loss",
    "generator_loss",
    "gradient_norms",
    "gradient_penalty",
]
