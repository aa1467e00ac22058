"""WGAN-GP networks: a critic that refuses batch norm, and the thesis' residual generator.

The gradient penalty (Gulrajani et al. 2017) constrains the norm of the critic's gradient with respect to
*each* input separately; batch norm makes each output depend on the whole batch, so the penalised gradient is
not the per-sample one and the constraint no longer holds. Gulrajani et al. use layer norm instead, which is
``Critic``'s default. A WGAN-GP critic is otherwise an ordinary :class:`~medsynth.networks.dcgan.Discriminator`
(its logit is the critic score), so any discriminator with ``norm`` "layer", "instance" or None will do;
:func:`check_no_batch_norm` lets an engine verify that.

``ResidualGenerator`` is the Galway thesis' WGAN-GP "Architecture 2" (James 2024, sections 5.5 and 6.7.1): transposed
convolutions for up-sampling interspersed with residual blocks ``x + ReLU(BN(conv(x)))``. The thesis' generator
also down-sampled with strided convolutions first; ours starts from a latent vector, so it has nothing to
down-sample and begins at the projected ``start_size`` map.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from medsynth.networks.dcgan import Discriminator, Generator

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
WHY_NO_BATCH_NORM = (
    "the gradient penalty is per sample and batch norm mixes the samples of a batch; "
    "use norm 'layer', 'instance' or None"
)


def check_no_batch_norm(critic: nn.Module) -> nn.Module:
    """Return ``critic`` unchanged, or raise a ValueError when it holds a batch-norm layer (invalid with GP)."""
    found = [name for name, layer in critic.named_modules() if isinstance(layer, BATCH_NORMS)]
    if found:
        where = ", ".join(found)
        raise ValueError(f"a WGAN-GP critic cannot use batch normalisation (found at {where}): {WHY_NO_BATCH_NORM}")
    return critic


class Critic(Discriminator):
    """WGAN-GP critic: a :class:`Discriminator` whose ``norm`` may not be "batch" (default "layer").

    ``forward(x (B, C, S, S), y (B,) | None)`` returns critic scores ``(B,)`` (or a tuple with class logits
    when ``aux_classifier``). All other options are the discriminator's, passed by keyword.
    """

    def __init__(self, *, norm: str | None = "layer", **kwargs: Any) -> None:
        if isinstance(norm, str) and norm.lower() == "batch":
            raise ValueError(f"a WGAN-GP critic cannot use batch normalisation: {WHY_NO_BATCH_NORM}")
        super().__init__(norm=norm, **kwargs)


class ResidualGenerator(Generator):
    """:class:`Generator` with ``residual_blocks`` (default 1) identity residual blocks after each upsampling block.

    Same constructor and ``forward(z (B, latent_size), y (B,) | None) -> (B, channels, S, S)`` as the generator.
    """

    def __init__(self, *, residual_blocks: int = 1, **kwargs: Any) -> None:
        if residual_blocks < 1:
            raise ValueError(f"a ResidualGenerator needs residual_blocks >= 1, got {residual_blocks}")
        super().__init__(residual_blocks=residual_blocks, **kwargs)
