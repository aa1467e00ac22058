"""DCGAN generator and discriminator, optionally class-conditional, for 2D images.

``Generator``: ``z (B, latent_size)`` [+ label embedding] -> linear -> ``(B, C0, start_size, start_size)``
-> ``num_blocks`` transposed convolutions (stride 2, each doubling the size) -> a stride-1 convolution to
``channels`` -> ``out_act``. So ``image_size == start_size * 2**num_blocks``. Give either ``num_blocks``
(``start_size`` follows) or ``start_size`` (default 4; ``num_blocks`` follows). Valid sizes with 2 to 4 blocks:

    image_size   num_blocks=2   num_blocks=3   num_blocks=4   num_blocks=None (start_size 4)
    32           start 8        start 4        start 2        3 blocks
    64           start 16       start 8        start 4        4 blocks
    128          start 32       start 16       start 8        5 blocks

``Discriminator`` mirrors it: ``num_blocks`` stride-2 convolutions (no norm on the first, as in DCGAN) to a
``(B, C, image_size / 2**num_blocks, ...)`` map (4x4 when ``num_blocks`` is None), flattened to the features
``phi(x)``, dropout, then a linear layer to one logit (no sigmoid). Conditioning:

- ``"projection"`` (Miyato & Koyama 2018): ``logit = psi(phi(x)) + <embed(y), phi(x)>``;
- ``"concat"``: one-hot label maps ``(B, num_classes, H, W)`` concatenated to the image channels;
- ``aux_classifier=True`` (ACGAN, Odena et al. 2017; Frid-Adar et al. 2018): a second linear head on
  ``phi(x)`` returns class logits, and ``forward`` returns ``(logits, class_logits)``. ACGAN uses it with
  ``conditioning="none"``; it also combines with projection or concat.

Widths, unless ``channels_per_block`` lists them: the discriminator's block ``i`` has
``min(base_channels * 2**i, 8 * base_channels)`` channels (64, 128, 256, 512, 512 ...), the generator's are the
same reversed, after a ``start_channels = min(base_channels * 2**num_blocks, 8 * base_channels)`` projection
(32 px, 3 blocks: 512 -> 256 -> 128 -> 64 -> 3, SNGAN's DCGAN generator).

The bone-fracture study's small Keras GAN (Ibrahim & Bukhari) is, exactly (the tests check its parameter counts)::

    Generator(latent_size=128, image_size=64, num_blocks=3, start_channels=128, channels_per_block=[128, 256, 512],
              norm=None, act="leakyrelu", out_kernel_size=5, activate_projection=False)
    Discriminator(image_size=64, num_blocks=3, channels_per_block=[64, 128, 128], norm=None, dropout=0.2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from monai.networks.blocks import ADN, Convolution
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

# name -> MONAI layer spec; "layer" norm is GroupNorm with one group (normalises over C, H, W per sample)
NORMS: dict[str | None, tuple | str | None] = {
    "batch": "batch",
    "instance": ("instance", {"affine": True}),
    "layer": ("group", {"num_groups": 1}),
    None: None,
}
ACTS: dict[str | None, tuple | str] = {
    "relu": "relu",
    "leakyrelu": ("leakyrelu", {"negative_slope": 0.2}),
    "elu": "elu",
    "gelu": "gelu",
    "prelu": "prelu",
}
OUT_ACTS: dict[str | None, type[nn.Module]] = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, None: nn.Identity}
CONDITIONINGS: tuple[str | None, ...] = (None, "projection", "concat")


def check_option(option: str, value: str | None, valid: Mapping | Sequence) -> str | None:
    """Return ``value`` lower-cased (``"none"`` -> ``None``) when it is in ``valid``; else a ValueError naming them."""
    key = value.lower() if isinstance(value, str) else value
    key = None if key == "none" else key
    if key not in valid:
        names = ", ".join("None" if v is None else repr(v) for v in valid)
        raise ValueError(f"unknown {option} {value!r}; valid names: {names}")
    return key


def block_layout(image_size: int, num_blocks: int | None = None, start_size: int | None = None) -> tuple[int, int]:
    """``(num_blocks, start_size)`` with ``image_size == start_size * 2**num_blocks``, or a ValueError.

    With ``num_blocks`` None it follows from ``start_size`` (default 4); with ``start_size`` None it follows
    from ``num_blocks``. For a discriminator ``start_size`` is the size of its last feature map.
    """
    blocks, start = num_blocks, start_size
    if blocks is None:
        start = 4 if start is None else start
        ratio = image_size // start if start >= 1 else 0
        if ratio >= 2 and ratio * start == image_size and ratio & (ratio - 1) == 0:
            blocks = ratio.bit_length() - 1
    elif start is None and blocks >= 1:
        start = image_size // 2**blocks
    if blocks is None or blocks < 1 or not start or start < 1 or start * 2**blocks != image_size:
        raise ValueError(
            f"cannot make image_size={image_size} from start_size={start_size} and num_blocks={num_blocks}: "
            "image_size must equal start_size * 2**num_blocks with num_blocks >= 1 (start_size is 4 when neither "
            "is given) "
            "(with 2/3/4 blocks: 32 px from 8/4/2, 64 px from 16/8/4, 128 px from 32/16/8)"
        )
    return blocks, start


def block_widths(num_blocks: int, base_channels: int, channels_per_block: Sequence[int] | None) -> list[int]:
    """Channels of each block, widest last: ``channels_per_block`` or ``min(base * 2**i, 8 * base)``."""
    if channels_per_block is None:
        return [min(base_channels * 2**i, 8 * base_channels) for i in range(num_blocks)]
    widths = [int(c) for c in channels_per_block]
    if len(widths) != num_blocks:
        raise ValueError(f"channels_per_block has {len(widths)} entries but the network has {num_blocks} blocks")
    return widths


def check_labels(y: torch.Tensor | None, batch: int, owner: str) -> torch.Tensor:
    """Return ``y`` (B,) or raise a ValueError saying that ``owner`` (e.g. "discriminator (projection)") needs it."""
    if y is None:
        raise ValueError("this " + owner.replace(" ", " is class-conditional ", 1) + "; pass labels y")
    if y.dim() != 1 or y.shape[0] != batch:
        raise ValueError(f"labels y must have shape (B,) = ({batch},), got {list(y.shape)}")
    return y


def apply_spectral_norm(module: nn.Module, embeddings: bool = False) -> nn.Module:
    """Spectrally normalise every conv, transposed conv and linear layer (and embedding) in ``module``, in place."""
    kinds: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    kinds += (nn.Embedding,) if embeddings else ()
    for layer in list(module.modules()):
        if isinstance(layer, kinds) and not parametrize.is_parametrized(layer, "weight"):
            _spectral_norm(layer)
    return module


def up_block(in_channels: int, out_channels: int, kernel_size: int, norm, act, dropout: float = 0.0) -> Convolution:
    """Transposed conv, stride 2, then norm -> act -> dropout: ``(B, Cin, H, W) -> (B, Cout, 2H, 2W)``."""
    padding = (kernel_size - 1) // 2
    return Convolution(
        2, in_channels, out_channels, strides=2, kernel_size=kernel_size, adn_ordering="NAD", act=act, norm=norm,
        dropout=dropout or None, padding=padding, output_padding=2 - kernel_size + 2 * padding, is_transposed=True,
    )


def down_block(in_channels: int, out_channels: int, kernel_size: int, norm, act) -> Convolution:
    """Conv, stride 2, then norm -> act: ``(B, Cin, H, W) -> (B, Cout, H/2, W/2)``."""
    padding = (kernel_size - 1) // 2
    return Convolution(
        2, in_channels, out_channels, strides=2, kernel_size=kernel_size, adn_ordering="NA", act=act, norm=norm,
        padding=padding,
    )


class ResidualBlock(nn.Module):
    """``x + act(norm(conv3x3(x)))``, ``(B, C, H, W) -> (B, C, H, W)``: the Galway thesis' residual block (5.5)."""

    def __init__(self, channels: int, norm, act) -> None:
        super().__init__()
        self.body = Convolution(2, channels, channels, kernel_size=3, adn_ordering="NA", act=act, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LatentProjection(nn.Module):
    """``z (B, latent_size)`` [+ ``embed(y)``] -> linear -> ``(B, C, S, S)`` -> norm -> act.

    ``z`` may also be ``(B, latent_size, 1, 1)``. With ``num_classes > 0`` the label embedding
    ``(B, embed_dim)`` is concatenated to ``z`` and labels are required.
    """

    def __init__(self, latent_size: int, channels: int, size: int, num_classes: int = 0,
                 embed_dim: int | None = None, norm=None, act=None) -> None:
        super().__init__()
        self.latent_size, self.channels, self.size = latent_size, channels, size
        self.embed = nn.Embedding(num_classes, embed_dim or num_classes) if num_classes > 0 else None
        self.owner = f"generator (label embedding, {num_classes} classes)"
        in_features = latent_size + (self.embed.embedding_dim if self.embed is not None else 0)
        self.linear = nn.Linear(in_features, channels * size * size)
        self.adn = ADN("NA", channels, act=act, norm=norm, norm_dim=2)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = z.flatten(1)
        if z.shape[1] != self.latent_size:
            raise ValueError(f"latent z must have shape (B, {self.latent_size}), got {list(z.shape)}")
        if self.embed is not None:
            y = check_labels(y, z.shape[0], self.owner)
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.adn(self.linear(z).view(-1, self.channels, self.size, self.size))


class Generator(nn.Module):
    """DCGAN generator: ``forward(z (B, latent_size), y (B,) | None) -> (B, channels, image_size, image_size)``.

    Output is in [-1, 1] with ``out_act="tanh"`` (or "sigmoid", None). ``num_classes > 0`` makes it
    class-conditional (label embedding of ``embed_dim``, default ``num_classes``, concatenated to ``z``);
    an unconditional generator ignores ``y``. ``dropout`` follows each upsampling block's activation.
    ``spectral_norm`` wraps its conv and linear layers. ``residual_blocks`` adds that many identity residual
    blocks after each upsampling block (see ``medsynth.networks.wgan.ResidualGenerator``).
    ``activate_projection=False`` leaves the projected map without norm and activation (Keras' bare Dense).
    See the module docstring for sizes and widths.
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
        residual_blocks: int = 0,
    ) -> None:
        super().__init__()
        norm_spec, act_spec = NORMS[check_option("norm", norm, NORMS)], ACTS[check_option("act", act, ACTS)]
        out_act_cls = OUT_ACTS[check_option("out_act", out_act, OUT_ACTS)]
        if out_kernel_size % 2 == 0:
            raise ValueError(f"out_kernel_size must be odd (same padding), got {out_kernel_size}")
        num_blocks, start_size = block_layout(image_size, num_blocks, start_size)
        widths = block_widths(num_blocks, base_channels, channels_per_block)
        widths = widths if channels_per_block is not None else widths[::-1]
        start_channels = start_channels or min(base_channels * 2**num_blocks, 8 * base_channels)
        self.latent_size, self.num_classes, self.image_size = latent_size, num_classes, image_size
        self.project = LatentProjection(
            latent_size, start_channels, start_size, num_classes, embed_dim,
            norm=norm_spec if activate_projection else None, act=act_spec if activate_projection else None,
        )
        stages, in_channels = [], start_channels
        for width in widths:
            up = up_block(in_channels, width, kernel_size, norm_spec, act_spec, dropout)
            residuals = [ResidualBlock(width, norm_spec, act_spec) for _ in range(residual_blocks)]
            stages.append(nn.Sequential(up, *residuals) if residuals else up)
            in_channels = width
        self.blocks = nn.Sequential(*stages)
        self.to_image = Convolution(2, in_channels, channels, kernel_size=out_kernel_size, conv_only=True)
        self.out_act = out_act_cls()
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``z (B, latent_size)``, ``y (B,)`` long class indices -> images ``(B, channels, S, S)``."""
        return self.out_act(self.to_image(self.blocks(self.project(z, y))))


class Discriminator(nn.Module):
    """DCGAN discriminator: ``forward(x (B, channels, S, S), y (B,) | None)`` -> logits ``(B,)`` (no sigmoid).

    With ``aux_classifier`` it returns ``(logits (B,), class_logits (B, num_classes))`` (ACGAN). ``conditioning``
    is "none", "projection" or "concat" (see the module docstring); a conditional discriminator needs ``y``, an
    unconditional one ignores it. ``num_classes`` must be > 0 exactly when conditioning or the auxiliary head
    uses it. ``dropout`` acts on the flattened features before the heads. ``spectral_norm`` wraps every conv,
    linear layer and the projection embedding. ``norm`` is skipped on the first block, as in DCGAN.
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
        norm: str | None = "batch",
        act: str = "leakyrelu",
        kernel_size: int = 4,
        channels_per_block: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        norm_spec, act_spec = NORMS[check_option("norm", norm, NORMS)], ACTS[check_option("act", act, ACTS)]
        self.conditioning = check_option("conditioning", conditioning, CONDITIONINGS)
        _check_classes(num_classes, self.conditioning, aux_classifier)
        num_blocks, end_size = block_layout(image_size, num_blocks)
        widths = block_widths(num_blocks, base_channels, channels_per_block)
        self.num_classes, self.input_shape = num_classes, [channels, image_size, image_size]
        in_channels = channels + (num_classes if self.conditioning == "concat" else 0)
        blocks = []
        for i, width in enumerate(widths):
            blocks.append(down_block(in_channels, width, kernel_size, norm_spec if i else None, act_spec))
            in_channels = width
        self.blocks = nn.Sequential(*blocks)
        features = widths[-1] * end_size**2
        self.dropout = nn.Dropout(dropout)
        self.adversarial = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if self.conditioning == "projection" else None
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)  # N(0, 1) would swamp psi(phi) at the start
        self.classifier = nn.Linear(features, num_classes) if aux_classifier else None
        if spectral_norm:
            apply_spectral_norm(self, embeddings=True)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x (B, C, S, S)``, ``y (B,)`` -> logits ``(B,)`` [, class logits ``(B, num_classes)``]."""
        if list(x.shape[1:]) != self.input_shape:
            raise ValueError(f"images must have shape (B, {str(self.input_shape)[1:-1]}), got {list(x.shape)}")
        if self.conditioning is not None:
            y = check_labels(y, x.shape[0], f"discriminator ({self.conditioning})")
        if self.conditioning == "concat":
            assert y is not None  # checked above
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, x.shape[2], x.shape[3])], dim=1)
        phi = self.dropout(self.blocks(x).flatten(1))
        logits = self.adversarial(phi).squeeze(1)
        if self.embed is not None:
            logits = logits + (self.embed(y) * phi).sum(dim=1)
        return logits if self.classifier is None else (logits, self.classifier(phi))


def _check_classes(num_classes: int, conditioning: str | None, aux_classifier: bool) -> None:
    """Raise a ValueError when ``num_classes`` does not fit the conditioning and auxiliary-head options."""
    uses_classes = conditioning is not None or aux_classifier
    if uses_classes and num_classes < (2 if aux_classifier else 1):
        raise ValueError(
            f"conditioning={conditioning or 'none'!r} with aux_classifier={aux_classifier} needs num_classes >= "
            f"{2 if aux_classifier else 1}, got {num_classes}"
        )
    if num_classes and not uses_classes:
        raise ValueError(
            f"num_classes={num_classes} but the discriminator does not use labels: set conditioning to "
            "'projection' or 'concat', or aux_classifier=True (ACGAN), or num_classes=0"
        )


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016), for ``net.apply(dcgan_init)``.

    Conv, transposed conv and linear weights ~ N(0, 0.02) (the raw weight under spectral norm), biases 0;
    batch-norm weights ~ N(1, 0.02), biases 0. Label embeddings keep PyTorch's default.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        # parametrizations is added at runtime by torch.nn.utils.parametrize; torch types it Tensor | Module
        weight = (cast(torch.Tensor, module.parametrizations.weight.original)  # type: ignore[union-attr]
                  if parametrize.is_parametrized(module, "weight") else None)
        nn.init.normal_(module.weight if weight is None else weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
