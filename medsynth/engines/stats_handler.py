"""What a user watches while a GAN trains: scalars on the console and in TensorBoard, and a progress bar.

:class:`TrainingLogHandler` attaches MONAI's stock ``StatsHandler`` (every ``log_interval`` iterations) and
``TensorBoardStatsHandler`` (every iteration) over the trainer's output, through ``output_transform`` (the
bundles pass :func:`medsynth.engines.gan_trainer.scalars`, so only the scalars the configuration computes
appear), plus ignite's ``ProgressBar`` with a time estimate for each epoch. The bar shows on a terminal and stays
out of redirected logs (tqdm's ``disable=None``).

It decides rank-0 work itself: under ``torch.distributed`` only rank 0 attaches anything, so every rank can be
given the same configuration. :func:`rank0_summary_writer` gives the matching TensorBoard writer (``None`` on the
other ranks, where MONAI's handler would otherwise open a ``./runs`` folder of its own).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ignite.contrib.handlers import ProgressBar
from ignite.engine import Engine
from monai.handlers import StatsHandler, TensorBoardStatsHandler
from torch.utils.tensorboard import SummaryWriter

from medsynth.engines.distributed import is_rank0


def rank0_summary_writer(log_dir: str | os.PathLike) -> SummaryWriter | None:
    """A TensorBoard ``SummaryWriter`` on ``log_dir`` on rank 0 (or a single process); ``None`` elsewhere."""
    return SummaryWriter(log_dir=str(log_dir)) if is_rank0() else None


class TrainingLogHandler:
    """Console scalars every ``log_interval`` iterations, TensorBoard scalars every iteration, a progress bar.

    Args:
        output_transform: ``engine.state.output -> {name: float}``, the scalars to log.
        summary_writer: where the TensorBoard scalars go; ``None``: no TensorBoard scalars.
        log_interval: console line every this many iterations (>= 1).
        name: the logger's name (``logging.conf`` configures it).
        progress: show the per-epoch progress bar (on a terminal only).
    """

    def __init__(self, output_transform: Callable[[Any], dict], summary_writer: SummaryWriter | None = None,
                 log_interval: int = 10, name: str = "medsynth.train", progress: bool = True) -> None:
        if int(log_interval) < 1:
            raise ValueError(f"log_interval must be >= 1, got {log_interval}")
        self.output_transform, self.summary_writer = output_transform, summary_writer
        self.log_interval, self.name, self.progress = int(log_interval), name, progress

    def attach(self, engine: Engine) -> None:
        if not is_rank0():
            return
        StatsHandler(name=self.name, tag_name="train", epoch_log=False, output_transform=self.output_transform,
                     iteration_log=lambda _engine, iteration: iteration % self.log_interval == 0).attach(engine)
        if self.summary_writer is not None:
            TensorBoardStatsHandler(summary_writer=self.summary_writer, iteration_log=True, epoch_log=False,
                                    output_transform=self.output_transform).attach(engine)
        if self.progress:
            ProgressBar(persist=False, disable=None, dynamic_ncols=True, mininterval=0.5).attach(engine)
