"""Training one classifier stage with MONAI's engines: early stopping and best-model selection on validation.

:func:`train_stage` runs MONAI's ``SupervisedTrainer`` with a ``SupervisedEvaluator`` on the validation split
every epoch (key metric: ROC-AUC, macro one-vs-rest for several classes, threshold-free), stops after
``patience`` epochs without improvement, and returns the network holding the weights of its best validation
epoch. An optional freeze schedule (the ISIC study) first trains only the new head with the backbone frozen,
then fine-tunes all layers at a lower learning rate. The test split is never seen here.

An epoch is ``epoch_length`` optimiser steps (:func:`steps_per_epoch` chooses it): one pass over the training
loader by default; more than one pass restarts the loader within the epoch (ignite's ``Engine`` does so when the
data iterator is exhausted before ``epoch_length`` iterations), fewer carries the rest of the pass into the next
epoch.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from ignite.contrib.handlers import ProgressBar
from ignite.engine import Events
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import (
    ROCAUC,
    EarlyStopHandler,
    StatsHandler,
    TensorBoardStatsHandler,
    ValidationHandler,
    from_engine,
    stopping_fn_from_metric,
)
from monai.transforms import Activationsd, AsDiscreted, Compose
from torch import nn
from torch.utils.data import DataLoader, Sampler, WeightedRandomSampler

from medsynth.engines.checkpoint import unwrap_network
from medsynth.engines.distributed import is_rank0
from medsynth.networks.classifiers import head_parameters, set_backbone_trainable

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
VAL_METRIC = "val_auc"


def steps_per_epoch(rule: str | int, largest: int, batch_size: int, world_size: int = 1) -> int | None:
    """Optimiser steps per epoch (per process) of every stage under ``rule``; None is one pass over each stage's data.

    ``rule``: ``"own"`` (None: each stage's own loader length), a positive integer (that many), or ``"matched"``:
    ``ceil(ceil(largest / world_size) / batch_size)``, enough batches for one pass over ``largest`` images
    (the largest training set of the experiment), split over ``world_size`` processes as a ``DistributedSampler``
    splits them.
    """
    if rule == "own":
        return None
    if rule == "matched":
        if largest < 1 or batch_size < 1 or world_size < 1:
            raise ValueError(f"matched steps_per_epoch needs images, batch_size and world_size >= 1, got {largest}, "
                             f"{batch_size}, {world_size}")
        return math.ceil(math.ceil(largest / world_size) / batch_size)
    if isinstance(rule, bool) or not isinstance(rule, int) or rule < 1:
        raise ValueError(f"steps_per_epoch must be 'matched', 'own' or an integer >= 1, got {rule!r}")
    return rule


def optimizer_factory(name: str = "adam", lr: float = 1e-3, momentum: float = 0.9, nesterov: bool = True,
                      weight_decay: float = 0.0) -> Callable[[Sequence[nn.Parameter], float], torch.optim.Optimizer]:
    """A function ``(params, lr_factor) -> optimizer``: Adam, or SGD with (Nesterov) momentum (Frid-Adar et al.)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")

    def make(params: Sequence[nn.Parameter], lr_factor: float = 1.0) -> torch.optim.Optimizer:
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr * lr_factor, momentum=momentum, nesterov=nesterov and momentum > 0,
                                   weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr * lr_factor, weight_decay=weight_decay)

    return make


def class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """``N / (K n_c)`` per class (sklearn's "balanced"): a class-weighted loss counts every class equally."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.as_tensor(weights, dtype=torch.float32)


def training_loader(dataset, labels: Sequence[int] | np.ndarray, batch_size: int, *, oversample: bool, seed: int,
                    num_workers: int = 0, distributed: bool = False) -> DataLoader:
    """Shuffled batches, or with ``oversample`` a seeded sampler drawing every class equally often.

    ``distributed``: each process reads its share (``DistributedSampler``, or MONAI's
    ``DistributedWeightedRandomSampler`` when oversampling).
    """
    generator = torch.Generator().manual_seed(seed)
    labels = np.asarray(labels, dtype=int)
    item_weights = (1.0 / np.bincount(labels))[labels] if oversample else None
    sampler: Sampler
    if distributed:
        from monai.data import DistributedSampler, DistributedWeightedRandomSampler

        sampler = (DistributedWeightedRandomSampler(dataset, item_weights.tolist(), generator=generator)
                   if item_weights is not None else DistributedSampler(dataset, shuffle=True))
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
    if item_weights is not None:
        # torch types weights Sequence[float]; WeightedRandomSampler takes (and documents) a tensor
        sampler = WeightedRandomSampler(torch.as_tensor(item_weights), len(labels), replacement=True,  # type: ignore[arg-type]
                                        generator=generator)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator, num_workers=num_workers,
                      drop_last=len(labels) > batch_size)


def new_epoch_per_pass(sampler) -> Callable:
    """:func:`train_stage`'s ``epoch_hook`` for a ``DistributedSampler``: ``set_epoch(1)``, ``set_epoch(2)``, ...,
    one new value before every pass over the data, across the trainers of a freeze schedule too.

    MONAI's trainer itself calls ``set_epoch(epoch)`` at each epoch start; with ``epoch_length`` beyond one pass,
    that would give the passes of later epochs the orders of earlier ones. This hook runs after it, right before
    ignite makes the next iterator, so every pass gets its own order (the same on every rank).
    """
    passes = itertools.count(1)

    def hook(engine) -> None:
        sampler.set_epoch(next(passes))

    return hook


class KeepBest:
    """Keeps a copy of the network's weights at its best validation metric (across freeze and fine-tune runs)."""

    def __init__(self, network: nn.Module, metric: str = VAL_METRIC) -> None:
        self.network, self.metric = network, metric
        self.best, self.epoch, self.state = -np.inf, 0, copy.deepcopy(unwrap_network(network).state_dict())

    def attach(self, evaluator: SupervisedEvaluator, trainer: SupervisedTrainer, epoch_offset: int = 0) -> None:
        evaluator.add_event_handler(Events.EPOCH_COMPLETED,
                                    lambda e: self._check(e, trainer.state.epoch + epoch_offset))

    def _check(self, evaluator, epoch: int) -> None:
        value = float(evaluator.state.metrics.get(self.metric, np.nan))
        if np.isfinite(value) and value > self.best:
            self.best, self.epoch = value, epoch
            self.state = copy.deepcopy(unwrap_network(self.network).state_dict())

    def restore(self) -> nn.Module:
        unwrap_network(self.network).load_state_dict(self.state)
        return self.network


def _evaluator(network: nn.Module, val_loader: DataLoader, num_classes: int, device, amp: bool,
               summary_writer=None, inferer=None) -> SupervisedEvaluator:
    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=num_classes)])
    handlers: list[StatsHandler | TensorBoardStatsHandler]
    handlers = [StatsHandler(name="medsynth.classifier", iteration_log=False, output_transform=lambda x: None)]
    if summary_writer is not None:
        handlers.append(TensorBoardStatsHandler(summary_writer, iteration_log=False, output_transform=lambda x: None))
    return SupervisedEvaluator(device=device, val_data_loader=val_loader, network=network, postprocessing=post,
                               key_val_metric={VAL_METRIC: ROCAUC(output_transform=from_engine(["pred", "label"]))},
                               val_handlers=handlers, amp=amp, inferer=inferer)


def train_stage(network: nn.Module, train_loader: DataLoader, val_loader: DataLoader, *, num_classes: int,
                optimizer: Callable, loss_function: nn.Module, max_epochs: int, patience: int = 10,
                freeze_epochs: int = 0, finetune_lr_factor: float = 0.1, device: str | torch.device = "cpu",
                amp: bool = False, summary_writer=None, log_interval: int = 10, epoch_hook: Callable | None = None,
                inferer=None, epoch_length: int | None = None) -> tuple[nn.Module, dict]:
    """Train ``network`` and return it holding its best-validation weights, with
    ``{best_metric, best_epoch, epochs, steps_per_epoch, optimizer_steps}``.

    Args:
        optimizer: ``(params, lr_factor) -> Optimizer`` (:func:`optimizer_factory`).
        freeze_epochs: > 0: first train only the head for this many epochs with the backbone frozen, then all
            layers at ``lr * finetune_lr_factor`` for the remaining ``max_epochs - freeze_epochs``.
        epoch_hook: called with the trainer before every pass over ``train_loader``: at the first epoch's start
            and whenever ignite restarts the data iterator (at an epoch start, or within an epoch when
            ``epoch_length`` is beyond one pass): :func:`new_epoch_per_pass` gives a distributed sampler a new
            epoch, so every pass its own order.
        inferer: MONAI inferer of training and validation (``SimpleInferer`` when None).
        epoch_length: optimiser steps per epoch (MONAI's ``SupervisedTrainer(epoch_length=...)``); None is one
            pass over ``train_loader``. Early stopping still ends a stage after whole epochs.

    ``steps_per_epoch`` is the epoch length used; ``optimizer_steps`` the iterations actually run (all epochs, both
    parts of a freeze schedule).
    """
    keep, bare = KeepBest(network), unwrap_network(network)
    runs: list[tuple[int, str | None, float]] = [(max_epochs, None, 1.0)]
    if freeze_epochs > 0:
        runs = [(min(freeze_epochs, max_epochs), "head", 1.0), (max_epochs - freeze_epochs, "all", finetune_lr_factor)]
    done = steps = 0
    length = len(train_loader) if epoch_length is None else int(epoch_length)
    for epochs, part, lr_factor in runs:
        if epochs <= 0:
            continue
        if part is not None:
            set_backbone_trainable(bare, part == "all")
        params = head_parameters(bare) if part == "head" else [p for p in network.parameters() if p.requires_grad]
        trainer, evaluator = _engines(network, train_loader, val_loader, num_classes, optimizer(params, lr_factor),
                                      loss_function, epochs, patience, device, amp, summary_writer, log_interval,
                                      inferer, epoch_length)
        keep.attach(evaluator, trainer, epoch_offset=done)
        if epoch_hook is not None:
            # ignite makes the first iterator after the first EPOCH_STARTED, and every later one right after
            # DATALOADER_STOP_ITERATION (an exhausted iterator, found at an epoch start or within a long epoch)
            trainer.add_event_handler(Events.EPOCH_STARTED(once=1), epoch_hook)
            trainer.add_event_handler(Events.DATALOADER_STOP_ITERATION, epoch_hook)
        trainer.run()
        done += trainer.state.epoch
        steps += trainer.state.iteration
    if freeze_epochs > 0:
        set_backbone_trainable(bare, True)
    if not np.isfinite(keep.best):
        raise RuntimeError("validation ROC-AUC was never defined: the validation split needs images of every class")
    return keep.restore(), {"best_metric": keep.best, "best_epoch": keep.epoch, "epochs": done,
                            "steps_per_epoch": length, "optimizer_steps": steps}


def _engines(network, train_loader, val_loader, num_classes, optimizer, loss_function, epochs, patience, device,
             amp, summary_writer, log_interval, inferer,
             epoch_length=None) -> tuple[SupervisedTrainer, SupervisedEvaluator]:
    evaluator = _evaluator(network, val_loader, num_classes, device, amp, summary_writer, inferer)
    handlers = [ValidationHandler(interval=1, validator=evaluator, epoch_level=True),
                StatsHandler(name="medsynth.classifier", tag_name="train_loss", epoch_log=False,
                             iteration_log=lambda engine, iteration: iteration % log_interval == 0,
                             output_transform=from_engine(["loss"], first=True))]
    if summary_writer is not None:
        handlers.append(TensorBoardStatsHandler(summary_writer, tag_name="train_loss", epoch_log=False,
                                                output_transform=from_engine(["loss"], first=True)))
    trainer = SupervisedTrainer(device=device, max_epochs=epochs, train_data_loader=train_loader, network=network,
                                optimizer=optimizer, loss_function=loss_function, train_handlers=handlers, amp=amp,
                                inferer=inferer, epoch_length=epoch_length)
    if is_rank0():  # each epoch's bar with its time estimate, on a terminal only (tqdm's disable=None)
        ProgressBar(persist=False, disable=None, dynamic_ncols=True, mininterval=0.5).attach(trainer)
    EarlyStopHandler(patience=patience, score_function=stopping_fn_from_metric(VAL_METRIC), trainer=trainer,
                     epoch_level=True).attach(evaluator)
    return trainer, evaluator


@torch.no_grad()
def predict(network: nn.Module, loader: DataLoader, device: str | torch.device = "cpu", amp: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(N, K)`` and labels ``(N,)`` (-1 where the items have none), in loader order."""
    was_training = network.training
    network.eval()
    probs, labels = [], []
    try:
        for batch in loader:
            image = batch["image"].to(device)
            with torch.autocast(device_type=torch.device(device).type, enabled=amp):
                logits = network(image)
            probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            label = batch.get("label")
            labels.append(np.full(len(image), -1) if label is None else np.asarray(label).reshape(-1))
    finally:
        network.train(was_training)
    return np.concatenate(probs).astype(np.float64), np.concatenate(labels).astype(int)
