"""``models/model.pt`` at the end of training: the generator alone, and the sidecar inference rebuilds it from.

The last epoch's generator is often not the best, so :class:`GeneratorExportHandler` exports the best checkpoint
by the key metric (FID, kept by :class:`~medsynth.engines.checkpoint.AtomicCheckpointSaver`) when there is one,
with spectral norm baked into plain weights, and writes ``model.pt.json`` beside it
(:mod:`medsynth.export.generator`): the generator's class and arguments, the classes it draws and the datalist it
was trained on. ``inference.yaml`` reads that file, so no network size is repeated there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver

from medsynth.engines.checkpoint import best_checkpoint, export_generator, unwrap_network
from medsynth.engines.distributed import is_rank0
from medsynth.engines.handlers import sampling_network
from medsynth.export.generator import GeneratorInfo, sidecar_path
from medsynth.fileio import atomic_write_json

logger = logging.getLogger(__name__)


class ExportedGenerator(NamedTuple):
    """What :class:`GeneratorExportHandler` wrote: the file, its source checkpoint (None: the live engine), the
    network (``"g_ema"`` or ``"g_network"``) and its metric value (None when unknown)."""

    path: Path
    checkpoint: Path | None
    network: str
    metric: float | None


class GeneratorExportHandler:
    """At ``Events.COMPLETED``, write the generator alone to ``path``, baked for a network without spectral norm.

    Args:
        path: the file, ``models/model.pt`` in a bundle (``torch.load(weights_only=True)`` gives its state dict).
        checkpoint_saver: a saver built with ``save_key_metric=True``: when it has written a best checkpoint,
            that checkpoint's generator is exported (its ``ema_key`` entry when present and ``use_ema``, else
            ``key``). Without one (or before the first metric), the engine's current generator is.
        use_ema: prefer the EMA generator (checkpoint entry ``ema_key``, or ``engine.g_ema``).
        key, ema_key: the generator entries of the checkpoint (as written by ``full_state``).
        metric_name: ``engine.state.metrics`` key reported in the log when exporting the live generator.
        info: the generator's sidecar (:func:`medsynth.export.generator.generator_info`), written to
            ``<path>.json`` after the weights; ``None`` writes none (inference then cannot rebuild the network).

    The chosen state is loaded into a deep copy of the engine's (unwrapped) generator and its parametrizations
    (spectral norm) are baked into plain weights (:func:`~medsynth.engines.checkpoint.bake_parametrizations`),
    so ``model.pt`` loads into the generator built with ``spectral_norm=False`` and gives the same eval-mode
    outputs. Only rank 0 writes; each file is written atomically, the sidecar last, so a sidecar always describes
    the weights beside it. ``exported`` holds an :class:`ExportedGenerator` afterwards.
    """

    def __init__(self, path: str | os.PathLike = "models/model.pt", checkpoint_saver: CheckpointSaver | None = None,
                 use_ema: bool = True, key: str = "g_network", ema_key: str = "g_ema",
                 metric_name: str = "fid", info: GeneratorInfo | None = None) -> None:
        self.path, self.checkpoint_saver, self.use_ema = Path(path), checkpoint_saver, use_ema
        self.key, self.ema_key, self.metric_name, self.info = key, ema_key, metric_name, info
        self.exported: ExportedGenerator | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():
            return
        self.export(engine)
        if self.info is not None:
            atomic_write_json(sidecar_path(self.path), self.info.to_json())

    def export(self, engine: Engine) -> ExportedGenerator:
        """Write ``path`` from the best checkpoint, or from the live generator when there is none; log which."""
        best = best_checkpoint(self.checkpoint_saver) if self.checkpoint_saver is not None else None
        if best is not None and not best.path.is_file():
            logger.warning("best checkpoint %s is gone; exporting the current generator instead", best.path)
            best = None
        if best is None:
            ema = getattr(engine, "g_ema", None)
            network = self.ema_key if ema is not None and self.use_ema else self.key
            export_generator(sampling_network(engine, self.use_ema), self.path)
            self.exported = ExportedGenerator(self.path, None, network, engine.state.metrics.get(self.metric_name))
            logger.info("exported the current %s (last %s: %s) to %s", network, self.metric_name,
                        self.exported.metric, self.path)
            return self.exported
        ckpt = torch.load(best.path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or (self.key not in ckpt and self.ema_key not in ckpt):
            names = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(f"{best.path} holds no generator under {self.key!r} or {self.ema_key!r} (has {names})")
        network = self.ema_key if self.use_ema and ckpt.get(self.ema_key) is not None else self.key
        # the architecture; export_generator loads into a copy of it. g_network: ConditionalGanTrainer's attribute (or
        # one set on a plain Engine), unknown to ignite's Engine
        like = unwrap_network(engine.g_network)  # type: ignore[attr-defined]
        export_generator(ckpt, self.path, self.key, ema_key=self.ema_key, use_ema=self.use_ema, like=like)
        self.exported = ExportedGenerator(self.path, best.path, network, best.metric)
        trainer = found if isinstance(found := ckpt.get("trainer"), dict) else {}
        # ignite's engine state_dict holds iteration and epoch_length, not the epoch
        epoch = trainer["iteration"] // trainer["epoch_length"] if trainer.get("epoch_length") else None
        logger.info("exported %s of the best checkpoint %s (epoch %s, key metric %s) to %s", network, best.path,
                    epoch, best.metric, self.path)
        return self.exported

