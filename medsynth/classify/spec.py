"""The settings of one classifier experiment, typed, documented and checked before anything is trained."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from medsynth.classify.arms import NEEDS_SYNTHETIC, REBALANCING, parse_arms
from medsynth.stats.classification import THRESHOLD_RULES
from medsynth.stats.comparison import ENDPOINTS

# the integer settings and their least allowed value
_INTS = {"seeds": 1, "seed": 0, "phases": 1, "image_size": 1, "batch_size": 1, "max_epochs": 1, "patience": 1,
         "freeze_epochs": 0, "n_resamples": 1, "num_workers": 0, "log_interval": 1}
_OPTIONAL_INTS = {"synthetic_count": 0, "pretrain_epochs": 1}
STEP_RULES = ("matched", "own")  # steps_per_epoch's words; else an integer


def _steps(value: Any) -> str | int:
    """``steps_per_epoch``: ``"matched"``, ``"own"`` or an integer >= 1 (a command line may give ``"40"``)."""
    problem = ValueError(f"steps_per_epoch must be 'matched', 'own' or an integer >= 1, got {value!r}")
    if isinstance(value, str):
        word = value.strip().lower()
        if word in STEP_RULES:
            return word
        if not word.isdigit():
            raise problem
        value = int(word)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise problem
    return value


def _flag(name: str, value: Any) -> bool:
    """A yes/no setting: a bool, 0/1, or the strings true/false/yes/no/1/0 (a command line gives strings)."""
    if isinstance(value, str):
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if value.strip().lower() not in words:
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return words[value.strip().lower()]
    if value in (0, 1):  # True, False, 0, 1
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ExperimentSpec:
    """What :class:`~medsynth.classify.experiment.ClassifierExperiment` runs; every field is a bundle config key.

    Attributes:
        output_dir: the folder of every result (``<arm>/seed_<s>/<stage>/...``, ``comparison.json|md``). Required.
        arm: one arm, or several run in that order (``"real,synthetic"`` or a list); the arms are listed in
            :mod:`medsynth.classify.arms`. Default ``"real"``.
        seeds: how many seeds (>= 1): ``seed``, ``seed + 1``, ...; each reseeds initialisation, batches,
            augmentation and the pick of synthetic images. Default 1.
        seed: the first seed (>= 0). Default 0.
        synthetic_datalist: the ``datalist.json`` of a synthetic set (a GAN bundle's inference writes one);
            needed by the arms ``oversample_matched``, ``synthetic``, ``warm_start``, ``synthetic_only`` and
            ``phases``. Its generator must have been trained on this experiment's datalist (the set's
            ``provenance.source_datalist``), and never on a patient of the validation or test split. Default None.
        allow_foreign_synthetic: accept a synthetic set whose ``source_datalist`` is another datalist than this
            experiment's, or is missing or unreadable (e.g. a public GAN's images); the reports say so
            (``synthetic_provenance``). A generator trained on a validation or test patient is refused even
            then, whenever its ``source_datalist`` can be read. Default False.
        synthetic_count: add this many synthetic images (>= 0); None adds all of them. Default None.
        target_ratio: or add synthetic images up to a majority:minority ratio, e.g. ``"1:1"`` (not with
            ``synthetic_count``). Default None.
        phases: the ``phases`` arm adds the selected synthetic images in this many equal increments. Default 5.
        rebalance: the ``rebalance`` arm's control: ``"weights"`` (class-weighted loss) or ``"oversample"``
            (a weighted sampler). Default ``"weights"``.
        image_size: the network's input side in pixels. Default 64.
        batch_size: training batch size (per process when distributed). Default 32.
        max_epochs: the most epochs of a stage. Default 30.
        steps_per_epoch: optimiser steps in one epoch (per process when distributed), the same for every arm so
            that no arm gets more compute for having more images. ``"matched"``: ``ceil(N_max / batch_size)``,
            N_max the largest training set of any stage of the arms run (a phase, a warm start's pre-training)
            and, when ``synthetic_datalist`` is given, of the ``synthetic`` arm (real + selected synthetic
            images) even when that arm is not run, so arms run in separate commands into one ``output_dir``
            match too; distributed, N_max is first split over the processes as a ``DistributedSampler`` splits
            it. ``"own"``: one pass over each stage's own training set (the loader's batches). An integer: that
            many. Early stopping still applies; each stage's ``metrics.json`` records ``steps_per_epoch``,
            ``optimizer_steps`` (run) and ``training_images``. Default ``"matched"``.
        patience: early stopping after this many epochs without a better validation ROC-AUC. Default 10.
        pretrain_epochs: a warm start's pre-training epochs; None uses ``max_epochs``. Default None.
        freeze_epochs: > 0 trains the new head alone this many epochs (backbone frozen), then all layers.
            Default 0.
        finetune_lr_factor: the learning rate factor (> 0) of the fine-tuning after ``freeze_epochs``. Default 0.1.
        threshold_rule: binary tasks: ``"balanced_accuracy"`` (maximise it on validation) or ``"fixed"`` (0.5).
            Default ``"balanced_accuracy"``.
        n_resamples: bootstrap resamples of every interval and paired difference. Default 1000.
        primary_endpoint: the comparison's pre-specified primary endpoint, tested once per arm over all seeds
            and Holm-corrected across the arms: ``"balanced_accuracy"``, ``"minority_recall"`` or ``"roc_auc"``
            (:data:`~medsynth.stats.comparison.ENDPOINTS`); every other difference is secondary. Default
            ``"balanced_accuracy"``.
        model_path: where the first seed's last scored network of the last arm is exported (with its
            ``.json`` sidecar: classes, threshold, architecture); None exports nothing. Default None.
        device: the torch device (a name or a ``torch.device``). Default ``"cpu"``.
        amp: mixed precision. Default False.
        cache: the datasets' cache, ``"memory"`` or ``"none"``. Default ``"memory"``.
        num_workers: DataLoader worker processes. Default 0.
        log_interval: iterations between training log lines. Default 10.
        distributed: DistributedDataParallel training (under torchrun); only rank 0 writes. Default False.
        intensity_range: the input intensity range of the transforms, ``"unit"`` ([0, 1]) or ``"symmetric"``
            ([-1, 1]). Default ``"unit"``.

    Integers are converted with ``int`` and checked in ``__post_init__``, as are the arm, rebalance,
    steps-per-epoch and threshold-rule names, and an arm that needs a synthetic set without one: a ValueError
    naming the field.
    """

    output_dir: str | os.PathLike
    arm: str | list[str] | tuple[str, ...] = "real"
    seeds: int = 1
    seed: int = 0
    synthetic_datalist: str | os.PathLike | None = None
    allow_foreign_synthetic: bool = False
    synthetic_count: int | None = None
    target_ratio: str | float | None = None
    phases: int = 5
    rebalance: str = "weights"
    image_size: int = 64
    batch_size: int = 32
    max_epochs: int = 30
    steps_per_epoch: str | int = "matched"
    patience: int = 10
    pretrain_epochs: int | None = None
    freeze_epochs: int = 0
    finetune_lr_factor: float = 0.1
    threshold_rule: str = "balanced_accuracy"
    n_resamples: int = 1000
    primary_endpoint: str = "balanced_accuracy"
    model_path: str | os.PathLike | None = None
    device: Any = "cpu"
    amp: bool = False
    cache: str = "memory"
    num_workers: int = 0
    log_interval: int = 10
    distributed: bool = False
    intensity_range: str = "unit"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, least in {**_INTS, **_OPTIONAL_INTS}.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_INTS:
                continue
            if isinstance(value, bool):
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}") from None
            if number < least:
                raise ValueError(f"{name} must be >= {least}, got {value!r}")
            put(name, number)
        try:
            factor = float(self.finetune_lr_factor)
        except (TypeError, ValueError):
            factor = float("nan")
        if not factor > 0:
            raise ValueError(f"finetune_lr_factor must be a number > 0, got {self.finetune_lr_factor!r}")
        put("finetune_lr_factor", factor)
        put("steps_per_epoch", _steps(self.steps_per_epoch))
        put("amp", bool(self.amp))
        put("distributed", bool(self.distributed))
        put("allow_foreign_synthetic", _flag("allow_foreign_synthetic", self.allow_foreign_synthetic))
        put("output_dir", Path(self.output_dir))
        put("synthetic_datalist", Path(self.synthetic_datalist) if self.synthetic_datalist else None)
        put("model_path", None if self.model_path is None else Path(self.model_path))
        arms = parse_arms(self.arm)  # ValueError "unknown arm ..."
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"unknown threshold_rule {self.threshold_rule!r}; choose {' or '.join(THRESHOLD_RULES)}")
        if self.primary_endpoint not in ENDPOINTS:
            raise ValueError(f"unknown primary_endpoint {self.primary_endpoint!r}; choose from {', '.join(ENDPOINTS)}")
        if self.rebalance not in REBALANCING:
            raise ValueError(f"unknown rebalance {self.rebalance!r}; choose from {', '.join(REBALANCING)}")
        if self.synthetic_count is not None and self.target_ratio is not None:
            raise ValueError("give at most one of synthetic_count and target_ratio")
        needs = [a for a in arms if a in NEEDS_SYNTHETIC]
        if needs and self.synthetic_datalist is None:
            raise ValueError(f"arm {needs} needs synthetic_datalist: the datalist.json of a synthetic set "
                             "(written by a GAN bundle's inference.yaml)")

    @property
    def arms(self) -> list[str]:
        """The arms to run, in order (``arm`` parsed)."""
        return parse_arms(self.arm)

    @property
    def seed_list(self) -> list[int]:
        """``[seed, seed + 1, ..., seed + seeds - 1]``."""
        return [self.seed + k for k in range(self.seeds)]

    @property
    def stage_pretrain_epochs(self) -> int:
        """A warm start's pre-training epochs: ``pretrain_epochs``, else ``max_epochs``."""
        return self.max_epochs if self.pretrain_epochs is None else self.pretrain_epochs

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (paths as strings)."""
        return {f.name: (os.fspath(v) if isinstance(v := getattr(self, f.name), os.PathLike) else v)
                for f in fields(self)}
