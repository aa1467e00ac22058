"""Handlers for :class:`~medsynth.engines.gan_trainer.ConditionalGanTrainer`: a fixed-latent sample grid.

:class:`SampleGridHandler` renders the same latents every ``interval`` iterations (or epochs), so successive grids
show how one set of samples evolves, and writes a labelled PNG (plus ``samples_latest.png``) and, optionally, a
TensorBoard image. :func:`~medsynth.export.grid.make_grid_image` (importable from here too) is the grid
renderer on its own, for inference code.

**Scalars** need no medsynth handler: :class:`~medsynth.engines.stats_handler.TrainingLogHandler` attaches MONAI's
stock ``StatsHandler`` and ``TensorBoardStatsHandler`` over :func:`~medsynth.engines.gan_trainer.scalars` (only
the scalars the configuration computes), on rank 0 only.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from torch import Tensor, nn

from medsynth.engines.checkpoint import unwrap_network
from medsynth.engines.distributed import is_rank0
from medsynth.export.grid import make_grid_image
from medsynth.fileio import atomic_write_bytes

UNCONDITIONAL_ROWS = 4  # rows of ``samples_per_class`` images drawn for an unconditional generator


def sampling_network(engine: Engine, use_ema: bool = True) -> nn.Module:
    """The bare generator to sample from: ``engine.g_ema``'s averaged module when present and ``use_ema``, else
    ``engine.g_network``, with DDP/DataParallel/``AveragedModel`` wrappers removed (a DDP forward on one rank only
    could wait forever on a buffer broadcast)."""
    ema = getattr(engine, "g_ema", None)
    # g_network: ConditionalGanTrainer's attribute (or one set on a plain Engine); ignite's Engine does not declare it
    return unwrap_network(ema if ema is not None and use_ema else engine.g_network)  # type: ignore[attr-defined]


@contextlib.contextmanager
def eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    """``network.eval()`` under ``torch.no_grad()`` for the block; each submodule's training flag is restored."""
    modes = [(m, m.training) for m in network.modules()]
    network.eval()
    try:
        with torch.no_grad():
            yield network
    finally:
        for module, training in modes:
            module.training = training




class PeriodicHandler:
    """Base of handlers that run every ``interval`` epochs (``epoch_level``) or iterations."""

    interval: int
    epoch_level: bool
    __call__: Callable[[Engine], None]  # each subclass's handler

    def attach(self, engine: Engine) -> None:
        event = Events.EPOCH_COMPLETED if self.epoch_level else Events.ITERATION_COMPLETED
        engine.add_event_handler(event(every=self.interval), self)


class SampleGridHandler(PeriodicHandler):
    """Every ``interval`` iterations (epochs with ``epoch_level``), render fixed latents through the generator.

    The latents are drawn once, on the first call, from ``torch.Generator().manual_seed(seed)``, so the grid does
    not depend on, nor advance, the training RNG. A conditional generator (``engine.num_classes`` K > 0) gives K
    rows of ``samples_per_class`` images, row k of class k, labelled with ``class_names[k]`` (default ``"k"``); an
    unconditional one gives :data:`UNCONDITIONAL_ROWS` unlabelled rows of ``samples_per_class``.

    The generator is ``engine.g_ema`` (when present and ``use_ema``) or ``engine.g_network``; it runs in ``eval()``
    mode under ``torch.no_grad()`` and each submodule's training flag is restored afterwards. Batch norm then uses
    running statistics: give the EMA ``use_buffers=True`` so that they are averaged too.

    Writes ``output_dir/samples_iter_{iteration:07d}.png`` and ``output_dir/samples_latest.png`` (each atomically:
    a temporary file, then ``os.replace``) and, with ``summary_writer``, ``add_image(tag, (C, H', W') in [0, 1],
    iteration)`` of the same labelled grid. The file name carries the iteration also with ``epoch_level``. Under
    ``torch.distributed`` only rank 0 renders.
    """

    def __init__(self, output_dir: str, interval: int = 500, samples_per_class: int = 8, seed: int = 0,
                 use_ema: bool = True, summary_writer=None, tag: str = "samples",
                 class_names: Sequence[str] | None = None, epoch_level: bool = False) -> None:
        if interval < 1 or samples_per_class < 1:
            raise ValueError(f"interval and samples_per_class must be >= 1, got {interval} and {samples_per_class}")
        self.output_dir, self.interval, self.samples_per_class = Path(output_dir), interval, samples_per_class
        self.seed, self.use_ema, self.summary_writer, self.tag = seed, use_ema, summary_writer, tag
        self.class_names, self.epoch_level = class_names, epoch_level
        self._latents: tuple[Tensor, Tensor | None] | None = None

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():
            return
        image = make_grid_image(self.generate(engine), self.samples_per_class, self._row_labels(engine))
        iteration = engine.state.iteration
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for name in (f"samples_iter_{iteration:07d}.png", "samples_latest.png"):
            atomic_write_bytes(self.output_dir / name, buffer.getvalue())
        if self.summary_writer is not None:
            array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
            grid = array.unsqueeze(0) if array.dim() == 2 else array.permute(2, 0, 1)
            self.summary_writer.add_image(self.tag, grid, iteration)

    def generate(self, engine: Engine) -> Tensor:
        """The fixed latents through the (EMA) generator: ``(rows * samples_per_class, C, H, W)`` on the CPU."""
        z, y = self._fixed_latents(engine)
        device = engine.state.device  # type: ignore[attr-defined]  # ignite's State takes any field; MONAI sets device
        with eval_mode(sampling_network(engine, self.use_ema)) as network:
            images = network(z.to(device), None if y is None else y.to(device))
        return images.float().cpu()

    def _fixed_latents(self, engine: Engine) -> tuple[Tensor, Tensor | None]:
        """``z (N, latent_size)`` and labels ``(N,)`` (None when unconditional), drawn once on the CPU."""
        if self._latents is None:
            num_classes = int(getattr(engine, "num_classes", 0) or 0)
            rows = num_classes or UNCONDITIONAL_ROWS
            generator = torch.Generator().manual_seed(self.seed)
            # latent_size: ConditionalGanTrainer's attribute (or one set on a plain Engine), unknown to ignite's Engine
            z = torch.randn(rows * self.samples_per_class, engine.latent_size,  # type: ignore[attr-defined]
                            generator=generator)
            y = torch.arange(num_classes).repeat_interleave(self.samples_per_class) if num_classes else None
            self._latents = (z, y)
        return self._latents

    def _row_labels(self, engine: Engine) -> list[str] | None:
        num_classes = int(getattr(engine, "num_classes", 0) or 0)
        if not num_classes:
            return None
        names = [str(k) for k in range(num_classes)] if self.class_names is None else list(self.class_names)
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class_names for a generator of {num_classes} classes")
        return names
