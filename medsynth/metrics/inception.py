"""pytorch-fid's InceptionV3 (the TensorFlow FID weights) from a local file; never downloaded implicitly.

``pytorch_fid.inception.fid_inception_v3()`` would fetch its weights from GitHub. Here the network is
built with pytorch-fid's own classes inside :func:`pytorch_fid_state`, which hands pytorch-fid a state
dict from a resolved local file (or a seeded random one, for tests) instead. The weights file is looked
up in this order (:func:`resolve_fid_weights`):

1. an explicit path (``--weights PATH``);
2. the environment variable ``MEDSYNTH_FID_WEIGHTS``;
3. ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth`` (where pytorch-fid itself
   caches it, so a machine that ran pytorch-fid once already has it).

When none exists, :class:`MissingWeightsError` names the file, the paths tried and the command that
fetches it on a machine that is online: ``medsynth weights download`` (:func:`download_fid_weights`, the
only function here that downloads; the Docker image runs it at build time).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from medsynth.errors import MissingWeightsError  # noqa: F401  (raised here; importable from here as before)
from medsynth.fileio import sha256_file

if TYPE_CHECKING:
    from torchvision.models import Inception3

logger = logging.getLogger(__name__)

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV = "MEDSYNTH_FID_WEIGHTS"


def fid_weights_url() -> str:
    """pytorch-fid's release URL of the weights (the only place they are published)."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    return FID_WEIGHTS_URL


def default_weights_path() -> Path:
    """``torch.hub.get_dir()/checkpoints/<FID_WEIGHTS_FILE>``, pytorch-fid's own cache location."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def resolve_fid_weights(path: str | os.PathLike | None = None) -> Path:
    """The weights file: ``path`` > ``$MEDSYNTH_FID_WEIGHTS`` > the torch hub cache.

    Raises:
        MissingWeightsError: naming the file, every path tried and ``medsynth weights download``.
    """
    tried = []
    for origin, candidate in (("--weights", path), (f"${WEIGHTS_ENV}", os.environ.get(WEIGHTS_ENV)),
                              ("torch hub cache", default_weights_path())):
        if not candidate:
            tried.append(f"{origin} (not set)")
            continue
        candidate = Path(candidate).expanduser()
        if candidate.is_dir():
            candidate = candidate / FID_WEIGHTS_FILE
        if candidate.is_file():
            return candidate
        tried.append(f"{origin} {candidate} (missing)")
        if origin == "--weights":  # an explicit path that does not exist is an error, not a fallback
            break
    raise MissingWeightsError(
        f"pytorch-fid Inception weights {FID_WEIGHTS_FILE} not found; tried {'; '.join(tried)}. "
        f"Run `medsynth weights download` on a machine that is online and copy the file to one of these "
        f"paths (or set {WEIGHTS_ENV}); nothing is downloaded implicitly")


def download_fid_weights(dest: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Fetch the weights to ``dest`` (a folder; default the torch hub cache), checking the sha256 prefix.

    Returns the file's path; an existing file with the right checksum is kept.
    """
    folder = Path(dest).expanduser() if dest is not None else default_weights_path().parent
    target = folder / FID_WEIGHTS_FILE
    if target.is_file() and sha256_file(target).startswith(FID_WEIGHTS_SHA256_PREFIX):
        logger.info("%s is already there", target)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    url = fid_weights_url()
    logger.info("downloading %s to %s", url, target)
    torch.hub.download_url_to_file(url, str(target), hash_prefix=FID_WEIGHTS_SHA256_PREFIX, progress=progress)
    return target


@contextlib.contextmanager
def pytorch_fid_state(provider: Callable[[nn.Module], dict]) -> Iterator[list[Inception3]]:
    """While active, pytorch-fid's ``fid_inception_v3()`` loads ``provider(model)`` instead of downloading.

    ``provider`` gets the freshly built torchvision ``Inception3`` (FID variant, 1008 classes) and returns
    its state dict. Yields the list of networks built inside the block (the last is the newest), so the
    caller can reach the final layer that ``pytorch_fid.inception.InceptionV3`` leaves out. Everything
    pytorch-fid builds inside, ``calculate_fid_given_paths`` included, gets these weights. Not thread-safe.
    """
    import pytorch_fid.inception as pfi

    built: list[Inception3] = []
    original_build, original_load = pfi._inception_v3, pfi.load_state_dict_from_url

    def build(*args, **kwargs) -> Inception3:
        built.append(original_build(*args, **kwargs))
        return built[-1]

    def load(url: str, *args, **kwargs) -> dict:
        return provider(built[-1])

    pfi._inception_v3, pfi.load_state_dict_from_url = build, load
    try:
        with torch.random.fork_rng(devices=[]):  # construction draws default inits; keep the caller's RNG
            yield built
    finally:
        pfi._inception_v3, pfi.load_state_dict_from_url = original_build, original_load


def file_state(path: str | os.PathLike) -> Callable[[nn.Module], dict]:
    """A :func:`pytorch_fid_state` provider that reads the weights file at ``path``."""
    return lambda model: torch.load(path, map_location="cpu", weights_only=True)


def random_state(seed: int) -> Callable[[nn.Module], dict]:
    """A provider of seeded random weights for the FID architecture (tests and benchmarks only).

    Convolutions get He-normal weights (``kaiming_normal_``, ReLU gain) so activations keep a useful scale
    through the ~50 layers (PyTorch's default init shrinks them to ~1e-8); batch norms keep identity
    statistics; the final layer is ``N(0, 1/2048)``. Same seed, same weights, on any machine.
    """
    def provide(model: nn.Module) -> dict:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                elif isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=module.in_features ** -0.5, generator=generator)
                    nn.init.zeros_(module.bias)
        return model.state_dict()

    return provide


class FIDInceptionExtractor(nn.Module):
    """pytorch-fid's InceptionV3 features ``(B, dims)`` and, for pool3 (2048), the 1008 unbiased logits.

    Input ``(B, 3, 299, 299)`` in [0, 1] (the caller resizes; see :mod:`medsynth.metrics.images`); the
    network maps it to [-1, 1] as pytorch-fid does. ``dims`` other than 2048 (64, 192, 768) are
    pytorch-fid's earlier blocks, average-pooled over space as its ``get_activations`` does; they have no
    logits. For speed the batch norms are folded into the convolutions (inference only; features change
    by ~1e-6 relative) and the network runs channels-last.
    """

    input_size = (299, 299)
    in_channels = 3
    fc_weight: torch.Tensor | None  # a buffer

    def __init__(self, network: nn.Module, fc_weight: torch.Tensor | None, name: str, fuse: bool = True):
        super().__init__()
        self.network = network.eval()
        self.register_buffer("fc_weight", None if fc_weight is None else fc_weight.detach().clone())
        self.name = name
        if fuse:
            _fold_batch_norms(self.network)
        self.network.to(memory_format=torch.channels_last)
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.network(images.contiguous(memory_format=torch.channels_last))[0]
        features = torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1)
        return features, None if self.fc_weight is None else features @ self.fc_weight.T


def _fold_batch_norms(network: nn.Module) -> None:
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torchvision.models.inception import BasicConv2d

    for module in network.modules():
        if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv, module.bn = fuse_conv_bn_eval(module.conv, module.bn), nn.Identity()


def build_fid_inception(provider: Callable[[nn.Module], dict], name: str, dims: int = 2048,
                        fuse: bool = True) -> FIDInceptionExtractor:
    """pytorch-fid's ``InceptionV3([block of dims], resize_input=False)`` with ``provider``'s weights."""
    from pytorch_fid.inception import InceptionV3

    if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
        raise ValueError(f"dims must be one of {sorted(InceptionV3.BLOCK_INDEX_BY_DIM)}, got {dims}")
    with pytorch_fid_state(provider) as built:
        network = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]], resize_input=False,
                              normalize_input=True)
    fc_weight = built[-1].fc.weight if dims == 2048 else None
    return FIDInceptionExtractor(network, fc_weight, name if dims == 2048 else f"{name}[dims={dims}]", fuse)


def fid_inception(weights: str | os.PathLike | None = None, dims: int = 2048,
                  fuse: bool = True) -> FIDInceptionExtractor:
    """The FID extractor with the real weights (resolved by :func:`resolve_fid_weights`)."""
    path = resolve_fid_weights(weights)
    return build_fid_inception(file_state(path), f"inception-v3-fid ({path.name})", dims, fuse)


def random_fid_inception(seed: int = 0, dims: int = 2048, fuse: bool = True) -> FIDInceptionExtractor:
    """The FID architecture with :func:`random_state` weights: for tests and benchmarks, never for reports."""
    return build_fid_inception(random_state(seed), f"inception-v3-fid-random(seed={seed})", dims, fuse)
