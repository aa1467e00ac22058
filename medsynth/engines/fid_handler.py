"""FID of the generator during training, for monitoring and best-checkpoint selection, and the final export.

Adversarial losses say little about sample quality, and the last epoch's generator is often not the best, so a
run needs a quality measure it can act on. :class:`FIDHandler` measures the (EMA) generator's FID against a
held-out real split every ``interval`` epochs (or iterations) and puts it in ``engine.state.metrics``, where
MONAI's ``CheckpointSaver(save_key_metric=True, key_metric_name="fid", key_metric_negative_sign=True)`` keeps the
best checkpoint. :class:`~medsynth.engines.export_handler.GeneratorExportHandler` then writes ``models/model.pt``
at the end of training: the generator alone, from that best checkpoint when there is one.

**Order matters.** ignite runs the handlers of one event in the order they were attached, and a MONAI bundle
attaches ``train#handlers`` in list order: list the ``FIDHandler`` *before* the checkpoint saver, or the saver
reads the previous evaluation's value. MONAI's saver compares at every ``EPOCH_COMPLETED`` and raises
``KeyError: 'fid'`` before the first value; :class:`~medsynth.engines.checkpoint.AtomicCheckpointSaver` waits for
it, so ``interval > 1`` (FID every few epochs) needs that saver.

**What the numbers mean.** FID is biased upward at small sample sizes (Chong & Forsyth 2020), by an amount that
depends on the extractor and on the number of fakes and reals: a training-time FID from ``num_samples=500`` fakes
is larger than one from 50k, and values are comparable only within one run (fixed ``num_samples``, real split and
extractor), which is all best-checkpoint selection needs. The default ``"random"`` extractor (a fixed-seed random
CNN) is fast and needs no weights but its FID is not the published metric; ``"inception"`` is (pytorch-fid's
InceptionV3, from a local weights file, see :mod:`medsynth.metrics.inception`). Report final numbers with
``medsynth metrics`` on many more samples.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine
from torch import Tensor, nn
from torch.utils.data import Dataset

from medsynth.engines.distributed import is_rank0
from medsynth.engines.handlers import PeriodicHandler, eval_mode, sampling_network
from medsynth.metrics.features import Features, RandomCNNExtractor, features_of_tensors
from medsynth.metrics.fid import frechet_distance_from_features

logger = logging.getLogger(__name__)

EXTRACTORS: tuple[str, ...] = ("random", "inception")


def proportional_labels(num_samples: int, class_counts: Tensor) -> Tensor:
    """``num_samples`` class indices ``(N,)`` sorted by class, in the proportions of ``class_counts (K,)``.

    Class k gets ``floor(N * c_k / sum(c))`` labels; the remaining ones go, one each, to the classes with the
    largest fractional parts (ties to the lower index). So ``[3, 1]`` and ``N = 10`` give 8 zeros and 2 ones.
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.sum() <= 0 or (counts < 0).any():
        raise ValueError(f"class_counts must be (K,) non-negative with a positive sum, got {counts.tolist()}")
    quotas = num_samples * counts / counts.sum()
    allocated = quotas.floor().long()
    remainder = num_samples - int(allocated.sum())
    order = sorted(range(len(counts)), key=lambda k: (-float(quotas[k] - allocated[k]), k))
    allocated[order[:remainder]] += 1
    return torch.arange(len(counts)).repeat_interleave(allocated)


class FIDHandler(PeriodicHandler):
    """Every ``interval`` epochs (iterations without ``epoch_level``), the FID of the generator's fixed fakes.

    Args:
        real_data: the held-out real split through the training transforms: an iterable (DataLoader) of batches
            ``{image_key: (B, C, H, W) in [-1, 1], label_key: (B,)}`` (or ``(image, label)`` tuples), or a map-style
            ``Dataset`` of such items (batched here by ``batch_size``). Read once, on the first call. Under DDP
            give it a loader without a ``DistributedSampler``: rank 0 evaluates the whole split.
        extractor: an ``nn.Module`` with ``in_channels``, ``input_size`` and ``forward(x in [0, 1]) -> (features,
            logits)`` (see :mod:`medsynth.metrics.features`), or ``"random"`` (``RandomCNNExtractor(seed=0)``
            with the real images' channel count) or ``"inception"`` (``fid_inception(weights)`` of
            :mod:`medsynth.metrics.inception`).
        weights: the Inception weights file for ``"inception"`` (else ``$MEDSYNTH_FID_WEIGHTS``, the hub cache).
            Resolved here, when the handler is built (so a bundle fails at start, not after ``interval`` epochs):
            ``MissingWeightsError`` names the file, the paths tried and how to get it. The network itself is built
            on the first evaluation.
        num_samples: fakes per evaluation (see the module docstring on small-sample bias).
        interval, epoch_level: when to evaluate (``Events.EPOCH_COMPLETED(every=interval)`` by default).
        batch_size: fakes per generator call; also the batch size for a ``Dataset`` ``real_data``.
        seed: seed of the private ``torch.Generator`` the fixed latents come from (see :meth:`fixed_latents`).
        use_ema: evaluate ``engine.g_ema`` when the trainer has one (else ``engine.g_network``).
        metric_name: key in ``engine.state.metrics``, TensorBoard tag and CSV column.
        summary_writer: a TensorBoard ``SummaryWriter``; gets ``add_scalar(metric_name, fid, iteration)``.
        log_file: a CSV file appended with ``iteration, epoch, <metric_name>, extractor, num_fake, num_real``
            (header written when the file is new, so a resumed run continues it).
        class_match: for a conditional generator, fake labels in the real split's class proportions (so FID
            compares like with like); False gives equal proportions.
        image_key, label_key: keys of a dict batch.

    The generator runs in ``eval()`` under ``torch.no_grad()`` (float32, no autocast; training flags restored),
    unwrapped from DDP. The global torch RNG is left as it was (see :meth:`compute`). Under ``torch.distributed``
    only rank 0 computes (attach it on rank 0 only, with the checkpoint saver). ``history`` lists
    ``(iteration, epoch, fid)`` of every evaluation of this process.
    """

    def __init__(self, real_data: Iterable | Dataset, extractor: nn.Module | str = "random",
                 weights: str | os.PathLike | None = None, num_samples: int = 500, interval: int = 1,
                 epoch_level: bool = True, batch_size: int = 64, seed: int = 0, use_ema: bool = True,
                 metric_name: str = "fid", summary_writer=None, log_file: str | os.PathLike | None = None,
                 class_match: bool = True, image_key: str = "image", label_key: str = "label") -> None:
        if num_samples < 2 or interval < 1 or batch_size < 1:
            raise ValueError(f"need num_samples >= 2, interval >= 1 and batch_size >= 1, got {num_samples}, "
                             f"{interval} and {batch_size}")
        if isinstance(extractor, str) and extractor not in EXTRACTORS:
            raise ValueError(f"unknown extractor {extractor!r}; choose one of {', '.join(EXTRACTORS)} or pass a module")
        if isinstance(extractor, nn.Module) and not all(hasattr(extractor, a) for a in ("in_channels", "input_size")):
            raise TypeError(f"extractor {type(extractor).__name__} needs `in_channels` and `input_size` attributes")
        if isinstance(extractor, str) and extractor == "inception":  # fail now; the network is built lazily
            from medsynth.metrics.inception import resolve_fid_weights

            weights = resolve_fid_weights(weights)
        self.real_data, self.extractor, self.weights = real_data, extractor, weights
        self.num_samples, self.interval, self.epoch_level = num_samples, interval, epoch_level
        self.batch_size, self.seed, self.use_ema, self.metric_name = batch_size, seed, use_ema, metric_name
        self.summary_writer, self.log_file, self.class_match = summary_writer, log_file, class_match
        self.image_key, self.label_key = image_key, label_key
        self.history: list[tuple[int, int, float]] = []
        self._real: Features | None = None
        self._real_labels: Tensor | None = None
        self._latents: tuple[Tensor, Tensor | None] | None = None

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():
            return
        start = time.perf_counter()
        fid = self.compute(engine)
        engine.state.metrics[self.metric_name] = fid
        iteration, epoch = engine.state.iteration, engine.state.epoch
        self.history.append((iteration, epoch, fid))
        assert self._real is not None  # compute() extracted the real features
        name, num_real = _extractor_name(self.extractor), len(self._real.features)
        logger.info("%s = %.4f at epoch %d, iteration %d (%s, %d fakes vs %d reals, %.1f s)", self.metric_name,
                    fid, epoch, iteration, name, self.num_samples, num_real, time.perf_counter() - start)
        if self.summary_writer is not None:
            self.summary_writer.add_scalar(self.metric_name, fid, iteration)
        if self.log_file is not None:
            self._append_csv([iteration, epoch, fid, name, self.num_samples, num_real])

    def compute(self, engine: Engine) -> float:
        """FID between the current generator's fixed fakes and the (cached) real split; records nothing.

        Runs under ``torch.random.fork_rng``: a DataLoader draws its base seed from the global torch RNG (and a
        real-data transform might draw more), which would otherwise shift the training run's random numbers.
        """
        device = _device(sampling_network(engine, self.use_ema))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            real = self.real_features(engine)
            return frechet_distance_from_features(real.features, self.fake_features(engine).features)

    def real_features(self, engine: Engine) -> Features:
        """Features ``(N_real, D)`` of the real split, extracted on the first call and cached."""
        if self._real is None:
            batches = iter(self._real_batches())
            first = next(batches, None)
            if first is None:
                raise ValueError("real_data yielded no batch: the FID needs a non-empty real split")
            self.extractor = _build_extractor(self.extractor, self._unpack(first)[0].shape[1], self.weights)
            labels: list[Tensor | None] = []

            def unit_images() -> Iterator[Tensor]:
                for batch in chain([first], batches):
                    images, batch_labels = self._unpack(batch)
                    labels.append(batch_labels)
                    yield (images.float().clamp(-1, 1) + 1) / 2

            device = _device(sampling_network(engine, self.use_ema))
            self._real = features_of_tensors(unit_images(), self.extractor, device=device)
            if len(self._real.features) < 2:
                raise ValueError("the real split has fewer than 2 images: no covariance, no FID")
            known = [y for y in labels if y is not None]
            self._real_labels = torch.cat(known) if len(known) == len(labels) else None
        return self._real

    def fixed_latents(self, engine: Engine) -> tuple[Tensor, Tensor | None]:
        """``z (num_samples, latent_size)`` and labels ``(num_samples,)`` (None when unconditional), on the CPU.

        Drawn once: ``z = torch.randn(num_samples, latent_size, generator=torch.Generator().manual_seed(seed))``;
        labels ``proportional_labels(num_samples, counts)``, sorted by class, with ``counts`` the real split's
        per-class counts (``class_match``) or ones. So successive FIDs differ only by the generator's weights.
        """
        if self._latents is None:
            num_classes = int(getattr(engine, "num_classes", 0) or 0)
            generator = torch.Generator().manual_seed(self.seed)
            # latent_size: ConditionalGanTrainer's attribute (or one set on a plain Engine), unknown to ignite's Engine
            z = torch.randn(self.num_samples, int(engine.latent_size), generator=generator)  # type: ignore[attr-defined]
            y = None
            if num_classes:
                counts = self._class_counts(engine, num_classes) if self.class_match else torch.ones(num_classes)
                y = proportional_labels(self.num_samples, counts)
            self._latents = (z, y)
        return self._latents

    def fake_features(self, engine: Engine) -> Features:
        """Features ``(num_samples, D)`` of the fixed latents through the generator, mapped to [0, 1]."""
        self.real_features(engine)  # builds the extractor and knows the real classes
        z, y = self.fixed_latents(engine)
        network = sampling_network(engine, self.use_ema)
        device = _device(network)

        def unit_images() -> Iterator[Tensor]:
            for start in range(0, len(z), self.batch_size):
                stop = start + self.batch_size
                fakes = network(z[start:stop].to(device), None if y is None else y[start:stop].to(device))
                yield (fakes.float().clamp(-1, 1) + 1) / 2

        assert isinstance(self.extractor, nn.Module)  # real_features built it
        with eval_mode(network):
            return features_of_tensors(unit_images(), self.extractor, device=device)

    def _class_counts(self, engine: Engine, num_classes: int) -> Tensor:
        if self._real_labels is None:
            raise ValueError(f"class_match needs labels under label_key={self.label_key!r} in every real batch "
                             "(the generator is conditional); pass class_match=False for equal class proportions")
        labels = self._real_labels
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"real labels span [{int(labels.min())}, {int(labels.max())}] but the generator has "
                             f"{num_classes} classes")
        return torch.bincount(labels, minlength=num_classes)

    def _real_batches(self) -> Iterable:
        if isinstance(self.real_data, Dataset):
            from monai.data import DataLoader  # collates MetaTensors and dict items

            return DataLoader(self.real_data, batch_size=self.batch_size, shuffle=False)
        return self.real_data

    def _unpack(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """Images ``(B, C, H, W)`` as a plain tensor and labels ``(B,)`` long (None when the batch has none)."""
        if isinstance(batch, Mapping):
            images, labels = batch[self.image_key], batch.get(self.label_key)
        elif isinstance(batch, (tuple, list)):
            images, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            images, labels = batch, None
        images = torch.as_tensor(images).as_subclass(Tensor)  # a MONAI MetaTensor drags its metadata along
        if images.dim() != 4:
            raise ValueError(f"real images must be batches (B, C, H, W), got {list(images.shape)}")
        if labels is None:
            return images, None
        labels = torch.as_tensor(labels).as_subclass(Tensor).reshape(-1).long().cpu()
        if labels.numel() != images.shape[0]:
            raise ValueError(f"{labels.numel()} labels for {images.shape[0]} real images (expected class indices)")
        return images, labels

    def _append_csv(self, row: list) -> None:
        assert self.log_file is not None  # called only with a log_file
        path = Path(self.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.is_file() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["iteration", "epoch", self.metric_name, "extractor", "num_fake", "num_real"])
            writer.writerow(row)


def _build_extractor(extractor: nn.Module | str, channels: int, weights: str | os.PathLike | None) -> nn.Module:
    if isinstance(extractor, nn.Module):
        return extractor
    if extractor == "random":
        return RandomCNNExtractor(seed=0, in_channels=channels)
    from medsynth.metrics.inception import fid_inception

    return fid_inception(weights)


def _extractor_name(extractor: nn.Module | str) -> str:
    return extractor if isinstance(extractor, str) else str(getattr(extractor, "name", type(extractor).__name__))


def _device(network: nn.Module) -> torch.device:
    return next(chain(network.parameters(), network.buffers()), torch.empty(0)).device
