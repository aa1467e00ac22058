"""WGAN-GP networks: a critic that refuses batch norm, and the thesis' residual generator.

The gradient penalty (Gulrajani et al. 2017) constrains the norm of the critic's gradient with respect to
*each* input separately; batch norm makes each output depend on the whole batch, so the penalised gradient is
not the per-sample one and the constraint no longer holds. Gulrajani et al. use layer norm instead, which is
``Critic``'s default. A WGAN-GP critic is otherwise an ordinary :class:`~medsynth.networks.dcgan.Discriminator`
(its logit is the critic score), so any discriminator with ``norm`` "layer", "instance" or None will do;
:func:`check_no_batch_norm` lets an engine verify that.

``ResidualGenerator`` is the thesis' WGAN-GP "Architecture 2" (seed 002, sections 5.5 and 6.7.1): transposed
convolutions for up-sampling interspersed with residual blocks ``x + ReLU(BN(conv(x)))``. The thesis' generator
also down-sampled with strided convolutions first; ours starts from a latent vector, so it has nothing to
down-sample and begins at the projected ``start_size`` map.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    when ``aux_classifier``). All other options are the discriminator's.
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        num_blocks: int | None = None,
        base_channels: int = 64,
        num_classes: int = 0,
        conditioning: str | None = "none",
        aux_classifier: bool = False,
        dropout: float = 0.0,
        spectral_norm: bool = False,
        norm: str | None = "layer",
        act: str = "leakyrelu",
        kernel_size: int = 4,
        channels_per_block: Sequence[int] | None = None,
    ) -> None:
        if isinstance(norm, str) and norm.lower() == "batch":
            raise ValueError(f"a WGAN-GP critic cannot use batch normalisation: {WHY_NO_BATCH_NORM}")
        super().__init__(
            image_size=image_size, channels=channels, num_blocks=num_blocks, base_channels=base_channels,
            num_classes=num_classes, conditioning=conditioning, aux_classifier=aux_classifier, dropout=dropout,
            spectral_norm=spectral_norm, norm=norm, act=act, kernel_size=kernel_size,
            channels_per_block=channels_per_block,
        )


class ResidualGenerator(Generator):
    """:class:`Generator` with ``residual_blocks`` (default 1) identity residual blocks after each upsampling block.

    Same constructor and ``forward(z (B, latent_size), y (B,) | None) -> (B, channels, S, S)`` as the generator.
    """

    def __init__(
        self,
        latent_size: int = 100,
        image_size: int = 64,
        channels: int = 3,
        num_blocks: int | None = None,
        base_channels: int = 64,
        num_classes: int = 0,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        spectral_norm: bool = False,
        norm: str | None = "batch",
        act: str = "relu",
        out_act: str | None = "tanh",
        start_size: int | None = None,
        kernel_size: int = 4,
        start_channels: int | None = None,
        channels_per_block: Sequence[int] | None = None,
        out_kernel_size: int = 3,
        activate_projection: bool = True,
        residual_blocks: int = 1,
    ) -> None:
        if residual_blocks < 1:
            raise ValueError(f"a ResidualGenerator needs residual_blocks >= 1, got {residual_blocks}")
        super().__init__(
            latent_size=latent_size, image_size=image_size, channels=channels, num_blocks=num_blocks,
            base_channels=base_channels, num_classes=num_classes, embed_dim=embed_dim, dropout=dropout,
            spectral_norm=spectral_norm, norm=norm, act=act, out_act=out_act, start_size=start_size,
            kernel_size=kernel_size, start_channels=start_channels, channels_per_block=channels_per_block,
            out_kernel_size=out_kernel_size, activate_projection=activate_projection, residual_blocks=residual_blocks,
        )
