"""Feature extractors and the batched extraction loop.

An extractor is an ``nn.Module`` with ``name`` (written into every report), ``in_channels``, ``input_size``
(``(H, W)``, or None to take images as they come) and ``forward(images (B, in_channels, H, W) in [0, 1])
-> (features (B, D), logits (B, K) or None)``. Logits, where there are any, feed the Inception Score.
Three kinds ship:

* :func:`medsynth.metrics.inception.fid_inception`: pytorch-fid's InceptionV3, the FID standard (default);
* :class:`ClassifierExtractor`: any classifier's penultimate layer (a domain-specific FID);
* :class:`RandomCNNExtractor` and :func:`medsynth.metrics.inception.random_fid_inception`: fixed-seed random
  networks, for tests.

:func:`extract_features` reads image files with the pipeline of :mod:`medsynth.metrics.images`, in a
background thread while the network runs, batched, on the GPU when there is one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, cast

import numpy as np
import torch
from torch import nn

from medsynth.metrics.images import load_unit_image, prepare_batch
from medsynth.progress import progress as progress_bar

logger = logging.getLogger(__name__)


@dataclass
class Features:
    """Extracted features ``(N, D)`` and logits ``(N, K)`` (None when the extractor has none), float64."""

    features: np.ndarray
    logits: np.ndarray | None

    def subset(self, indices: Sequence[int] | np.ndarray) -> Features:
        idx = np.asarray(indices, dtype=np.int64)
        return Features(self.features[idx], None if self.logits is None else self.logits[idx])


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class RandomCNNExtractor(nn.Module):
    """A small fixed-seed random CNN: 4 stride-2 conv+ReLU layers, mean pool, ``width*8`` features, 10 logits.

    Input ``(B, in_channels, 32, 32)`` by default. Fast; for tests only (its features mean nothing).
    """

    def __init__(self, seed: int = 0, in_channels: int = 3, input_size: tuple[int, int] = (32, 32),
                 width: int = 8, num_classes: int = 10):
        super().__init__()
        self.name = f"random-cnn(seed={seed})"
        self.in_channels, self.input_size = in_channels, tuple(input_size)
        channels = [in_channels, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels[-1], num_classes)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                    assert module.bias is not None  # built with bias=True above
                    nn.init.normal_(module.bias, std=0.1, generator=generator)
        self.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images)
        return features, self.head(features)


class ClassifierExtractor(nn.Module):
    """Features from a trained classifier: the output of its module ``layer`` (e.g. ``"avgpool"``).

    Args:
        network: the classifier architecture (e.g. ``torchvision.models.resnet18(num_classes=2)``).
        checkpoint: state dict file to load into it (None: use ``network`` as it is).
        layer: name in ``network.named_modules()``; its output, average-pooled over space when 4-D, is
            the feature vector (for a penultimate layer, a domain-specific FID).
        input_size: ``(H, W)`` the classifier was trained at; in_channels: 1 or 3.
        state_key: key of the state dict inside the checkpoint (e.g. ``"network"``), if nested.
        mean, std: per-channel normalisation the classifier expects after [0, 1] scaling.

    The network's output, when it is ``(B, K)``, is returned as logits (the IS then uses the classifier).
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, network: nn.Module, checkpoint: str | os.PathLike | None, layer: str, *,
                 input_size: tuple[int, int] = (64, 64), in_channels: int = 1, state_key: str | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        modules = dict(network.named_modules())
        if layer not in modules:
            names = ", ".join(n for n in modules if n)[:300]
            raise ValueError(f"no module {layer!r} in {type(network).__name__}; modules include: {names}")
        if checkpoint is not None:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            network.load_state_dict(state[state_key] if state_key else state)
        self.network = network.eval().requires_grad_(False)
        self.layer, self.in_channels, self.input_size = layer, in_channels, tuple(input_size)
        source = os.path.basename(str(checkpoint)) if checkpoint is not None else "in-memory"
        self.name = f"classifier:{type(network).__name__}({source})@{layer}"
        self.register_buffer("mean", torch.tensor(mean or [0.0] * in_channels).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std or [1.0] * in_channels).view(1, -1, 1, 1))
        self._captured: list[torch.Tensor] = []
        modules[layer].register_forward_hook(lambda module, args, output: self._captured.append(output))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._captured.clear()
        output = self.network((images - self.mean) / self.std)
        features = self._captured[-1]
        features = features.mean(dim=tuple(range(2, features.ndim))) if features.ndim > 2 else features
        logits = output if isinstance(output, torch.Tensor) and output.ndim == 2 else None
        return features.flatten(1), logits


@torch.inference_mode()
def features_of_tensors(batches: Iterable[torch.Tensor], extractor: nn.Module, *, legacy: bool = False,
                        device: str | torch.device | None = None) -> Features:
    """Features of image batches ``(B, C, H, W)`` in [0, 1] (e.g. generator output mapped to [0, 1]).

    Each batch is prepared like an image file (channels, legacy quantization, resize); see
    :mod:`medsynth.metrics.images`. For GAN training loops: no files involved.
    """
    device = resolve_device(device)
    extractor.to(device).eval()
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor | None] = []
    for batch in batches:
        # the extractor's duck-typed attributes (see the module docstring); nn.Module types them Tensor | Module
        x = prepare_batch(batch.to(device), cast(int, extractor.in_channels),
                          cast("tuple[int, int] | None", extractor.input_size), legacy)
        f, lg = extractor(x)
        features.append(f.double().cpu())
        logits.append(None if lg is None else lg.double().cpu())
    if not features:
        raise ValueError("no images to extract features from")
    has_logits = all(lg is not None for lg in logits)
    return Features(torch.cat(features).numpy(),
                    torch.cat([lg for lg in logits if lg is not None]).numpy() if has_logits else None)


def extract_features(paths: Sequence[str | os.PathLike], extractor: nn.Module, *,
                     window: Sequence[float] | None = None, legacy: bool = False, batch_size: int = 50,
                     device: str | torch.device | None = None, progress: bool = True,
                     progress_file: IO[str] | None = None) -> Features:
    """Features of image files, read and scaled by :func:`~medsynth.metrics.images.load_unit_image`.

    Args:
        paths: image files (any format ``read_image`` takes); all need the same channel count.
        extractor: see the module docstring.
        window: HU window for CT images; legacy: pytorch-fid's 8-bit pipeline.
        batch_size: images per forward pass; device: default CUDA when available.
        progress: a progress bar with a time estimate (:func:`medsynth.progress.progress`) on stderr, shown only
            when stderr is a terminal; progress_file: the bar's stream instead of stderr.
    """
    chunks = [list(paths[i:i + batch_size]) for i in range(0, len(paths), batch_size)]
    options: dict[str, Any] = {} if progress else {"disable": True}
    bar = progress_bar(total=len(paths), desc=f"features ({extractor.name})", unit="img", file=progress_file,
                       **options)  # shown on a terminal only

    def read(chunk: list) -> list[np.ndarray]:
        return [load_unit_image(p, window) for p in chunk]

    def batches() -> Iterable[torch.Tensor]:
        with ThreadPoolExecutor(max_workers=1) as pool:  # read the next batch while this one runs
            pending = pool.submit(read, chunks[0]) if chunks else None
            for i in range(len(chunks)):
                assert pending is not None  # chunks is not empty
                images = pending.result()
                if i + 1 < len(chunks):
                    pending = pool.submit(read, chunks[i + 1])
                yield from _stack(images, cast("tuple[int, int] | None", extractor.input_size))
                bar.update(len(images))

    try:
        return features_of_tensors(batches(), extractor, legacy=legacy, device=device)
    finally:
        bar.close()


def _stack(images: list[np.ndarray], size: tuple[int, int] | None) -> Iterable[torch.Tensor]:
    """One batch tensor when the images share a shape, else one tensor per image (each resized later)."""
    if len({im.shape for im in images}) == 1:
        yield torch.from_numpy(np.stack(images))
    elif size is None:
        raise ValueError("images of different sizes need an extractor with a fixed input_size")
    else:
        for image in images:
            yield torch.from_numpy(image)[None]
