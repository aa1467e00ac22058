"""The classifier bundle's experiment: arms x seeds x stages, each scored on the same real test split.

For every arm (:mod:`medsynth.data.arms`) and seed, each stage trains a fresh network (or, for a warm start's
fine-tuning, the pre-trained one) with :func:`~medsynth.engines.classifier.train_stage`, keeps the weights of
its best validation epoch, chooses the decision threshold on the **validation** predictions
(:func:`~medsynth.metrics.classification.choose_threshold`), and only then predicts the test split. Files::

    <output_dir>/<arm>/seed_<s>/<stage>/   metrics.json  metrics.md  predictions.csv  validation_predictions.csv
                                           roc.png  pr.png  confusion.png  model.pt
    <output_dir>/<arm>/metrics.json|md     every seed's reports, and mean +- sd over seeds
    <output_dir>/comparison.json|md        every arm found in output_dir against the ``real`` arm, paired on the
                                           same test images (McNemar, DeLong, paired bootstrap), seed by seed
    <output_dir>/tensorboard/<arm>/seed_<s>/<stage>
    <model_path>, <model_path>.json        the first seed's last scored network of the last arm, its threshold

Arms run in separate commands into one ``output_dir`` are compared too: the comparison is rebuilt from the
prediction files on disk, after checking that both arms predicted the same test images.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from monai.utils import set_determinism
from torch import nn

from medsynth.data.arms import NEEDS_SYNTHETIC, Stage, arm_stages, load_synthetic, parse_arms, select_synthetic
from medsynth.data.training import TrainingData
from medsynth.engines.classifier import class_weights, predict, train_stage, training_loader
from medsynth.engines.handlers import is_rank0
from medsynth.errors import InputError, refuse_output_inside
from medsynth.metrics import classification as cls
from medsynth.metrics import classification_outputs as out
from medsynth.metrics import classification_plots as plots

logger = logging.getLogger(__name__)

BASELINE = "real"


class ClassifierExperiment:
    """Runs the arms of one experiment; see the module docstring. Every argument is a bundle config key.

    Args:
        data: the real datalist (train / validation / test).
        network_def: ``() -> nn.Module``, a fresh network per stage and seed.
        optimizer: ``(params, lr_factor) -> Optimizer`` (:func:`~medsynth.engines.classifier.optimizer_factory`).
        arm: one arm, or several (``"real,synthetic"``), run in that order.
        seeds: how many seeds, ``seed``, ``seed + 1``, ...; each reseeds initialisation, batches, augmentation and
            the pick of synthetic images.
        synthetic_datalist, synthetic_count, target_ratio: the synthetic set and how much of it an arm adds.
        pretrain_epochs: a warm start's pre-training epochs (default ``max_epochs``).
        threshold_rule: ``"balanced_accuracy"`` (Youden's J on validation) or ``"fixed"`` (0.5), binary tasks.
    """

    def __init__(self, data: TrainingData, network_def: Callable[[], nn.Module], optimizer: Callable,
                 output_dir: str | os.PathLike, *, arm: str | list[str] = "real", seeds: int = 1, seed: int = 0,
                 synthetic_datalist: str | os.PathLike | None = None, synthetic_count: int | None = None,
                 target_ratio: str | float | None = None, phases: int = 5, rebalance: str = "weights",
                 image_size: int = 64, batch_size: int = 32, max_epochs: int = 30, patience: int = 10,
                 pretrain_epochs: int | None = None, freeze_epochs: int = 0, finetune_lr_factor: float = 0.1,
                 threshold_rule: str = "balanced_accuracy", n_resamples: int = 1000,
                 model_path: str | os.PathLike | None = None, device: str | torch.device = "cpu", amp: bool = False,
                 cache: str = "memory", num_workers: int = 0, log_interval: int = 10, distributed: bool = False,
                 intensity_range: str = "unit", inferer=None) -> None:
        self.data, self.network_def, self.optimizer = data, network_def, optimizer
        self.output_dir, self.arms = Path(output_dir), parse_arms(arm)
        if int(seeds) < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        self.seeds = [int(seed) + k for k in range(int(seeds))]
        self.synthetic_path = None if not synthetic_datalist else Path(synthetic_datalist)
        self.synthetic_count, self.target_ratio, self.phases, self.rebalance = synthetic_count, target_ratio, \
            int(phases), rebalance
        self.image_size, self.batch_size, self.max_epochs, self.patience = int(image_size), int(batch_size), \
            int(max_epochs), int(patience)
        self.pretrain_epochs = self.max_epochs if pretrain_epochs is None else int(pretrain_epochs)
        self.freeze_epochs, self.finetune_lr_factor = int(freeze_epochs), float(finetune_lr_factor)
        self.threshold_rule, self.n_resamples = threshold_rule, int(n_resamples)
        self.model_path = None if model_path is None else Path(model_path)
        self.device, self.amp, self.cache, self.num_workers = torch.device(device), bool(amp), cache, int(num_workers)
        self.log_interval, self.distributed, self.range = int(log_interval), bool(distributed), intensity_range
        self.inferer = inferer
        self.classes = data.classes
        self.positive = data.minority_class if data.num_classes == 2 else None
        self._check()

    # -- checks ---------------------------------------------------------------------------------------------
    def _check(self) -> None:
        inputs = list(self.data.input_folders)
        if self.synthetic_path is not None:
            inputs.append(self.synthetic_path.parent)
        refuse_output_inside(self.output_dir, inputs)
        if self.model_path is not None:
            refuse_output_inside(self.model_path.parent, inputs)
        for split in ("validation", "test"):
            counts = self.data.counts(split)
            empty = [name for name, n in counts.items() if n == 0]
            if empty:
                raise InputError(self.data.path, f"the {split} split has no images of class {empty} ({counts}); "
                                                 "every class must be in validation (threshold, early stopping) and "
                                                 "test (scoring)")
        if self.threshold_rule not in ("balanced_accuracy", "fixed"):
            raise ValueError(f"unknown threshold_rule {self.threshold_rule!r}; choose balanced_accuracy or fixed")
        needs = [a for a in self.arms if a in NEEDS_SYNTHETIC]
        if needs and self.synthetic_path is None:
            raise ValueError(f"arm {needs} needs synthetic_datalist: the datalist.json of a synthetic set "
                             "(written by a GAN bundle's inference.yaml)")

    # -- data -----------------------------------------------------------------------------------------------
    def _dataset(self, items: list[dict], augment: bool, seed: int):
        from medsynth.data.datasets import make_dataset

        # only what the network reads: real and synthetic items carry different provenance keys, which a batch
        # cannot collate
        items = [{"image": it["image"], "label": it["label"]} for it in items]
        transform = self.data.transform(self.image_size, augment=augment, seed=seed, range=self.range)
        return make_dataset({"training": items}, "training", transform, cache=self.cache, num_workers=self.num_workers)

    def _eval_loader(self, split: str):
        from torch.utils.data import DataLoader

        dataset = self._dataset(self.data.datalist[split], augment=False, seed=0)
        return DataLoader(dataset, batch_size=64, shuffle=False, num_workers=self.num_workers)

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train and score every arm and seed; returns ``{arm: {seed: {stage: report}}}``."""
        synthetic = load_synthetic(self.synthetic_path, self.data.datalist) if self.synthetic_path else None
        val_loader, test_loader = self._eval_loader("validation"), self._eval_loader("test")
        results: dict = {}
        last = None
        for arm in self.arms:
            results[arm] = {}
            for seed in self.seeds:
                set_determinism(seed=seed)
                chosen = None
                if synthetic is not None and arm in NEEDS_SYNTHETIC:
                    chosen = select_synthetic(self.data.datalist["training"], synthetic, self.classes,
                                              count=self.synthetic_count, target_ratio=self.target_ratio, seed=seed)
                stages = arm_stages(arm, self.data.datalist["training"], chosen, self.classes,
                                    rebalance=self.rebalance, phases=self.phases)
                results[arm][seed], network = self._run_stages(arm, seed, stages, val_loader, test_loader)
                if seed == self.seeds[0]:
                    last = (arm, seed, network, results[arm][seed])
            if is_rank0():
                self._summarise(arm, results[arm])
        if is_rank0():
            write_comparison(self.output_dir, self.n_resamples)
            if self.model_path is not None and last is not None:
                self._export(*last)
        return results

    def _run_stages(self, arm: str, seed: int, stages: list[Stage], val_loader, test_loader) -> tuple[dict, nn.Module]:
        reports, trained, network = {}, {}, None
        for stage in stages:
            logger.info("arm %s seed %d stage %s: training on %s", arm, seed, stage.name, stage.counts)
            network = self.network_def()
            if stage.init_from is not None:
                network.load_state_dict(trained[stage.init_from])
            network, info = self._train(network, stage, seed, val_loader, f"{arm}/seed_{seed}/{stage.name}")
            trained[stage.name] = {k: v.detach().clone() for k, v in network.state_dict().items()}
            if stage.scored:
                reports[stage.name] = self._score(network, arm, seed, stage, info, val_loader, test_loader)
            elif is_rank0():  # a warm start's pre-trained network: kept, with what it was trained on
                folder = self.output_dir / arm / f"seed_{seed}" / stage.name
                folder.mkdir(parents=True, exist_ok=True)
                torch.save(network.state_dict(), folder / "model.pt")
                _write_json(folder / "stage.json", {"arm": arm, "seed": seed, "stage": stage.name,
                                                    "training_counts": stage.counts, **info})
        return reports, network

    def _train(self, network: nn.Module, stage: Stage, seed: int, val_loader, tag: str) -> tuple[nn.Module, dict]:
        network = network.to(self.device)
        model = network
        if self.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            # a frozen backbone gets no gradients in the head-only epochs: DDP must not wait for them
            model = nn.parallel.DistributedDataParallel(network, device_ids=device_ids,
                                                        find_unused_parameters=self.freeze_epochs > 0)
        labels = [it["label"] for it in stage.training]
        loader = training_loader(self._dataset(stage.training, stage.augment, seed), labels, self.batch_size,
                                 oversample=stage.rebalance == "oversample", seed=seed, num_workers=self.num_workers,
                                 distributed=self.distributed)
        weight = class_weights(labels, len(self.classes)) if stage.rebalance == "weights" else None
        loss = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(self.device))
        epochs = self.pretrain_epochs if stage.name == "pretrain" else self.max_epochs
        hook = (lambda engine: loader.sampler.set_epoch(engine.state.epoch)) if self.distributed else None
        writer = self._writer(tag)
        try:
            _, info = train_stage(model, loader, val_loader, num_classes=len(self.classes),
                                  optimizer=self.optimizer, loss_function=loss, max_epochs=epochs,
                                  patience=self.patience, freeze_epochs=self.freeze_epochs,
                                  finetune_lr_factor=self.finetune_lr_factor, device=self.device, amp=self.amp,
                                  summary_writer=writer, log_interval=self.log_interval, epoch_hook=hook,
                                  inferer=self.inferer)
        finally:
            if writer is not None:
                writer.close()
        logger.info("%s: best validation ROC-AUC %.4f at epoch %d of %d", tag, info["best_metric"],
                    info["best_epoch"], info["epochs"])
        return network, info

    def _writer(self, tag: str):
        if not is_rank0():
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.output_dir / "tensorboard" / tag))

    def _score(self, network: nn.Module, arm: str, seed: int, stage: Stage, info: dict, val_loader,
               test_loader) -> dict:
        """Threshold from validation predictions only, then the test split's report and files."""
        val_probs, val_y = predict(network, val_loader, self.device, self.amp)
        threshold = None
        if self.positive is not None:
            threshold = cls.choose_threshold((val_y == self.positive).astype(int), val_probs[:, self.positive],
                                             rule=self.threshold_rule)
        test_probs, test_y = predict(network, test_loader, self.device, self.amp)
        pred = cls.predict_labels(test_probs, threshold, positive=self.positive if self.positive is not None else 1)
        report = cls.classification_report(test_y, test_probs, self.classes, threshold=threshold,
                                           positive=self.positive, n_resamples=self.n_resamples, seed=seed)
        if is_rank0():
            self._write_stage(network, arm, seed, stage, info, report, (val_y, val_probs, threshold),
                              (test_y, test_probs, pred))
        return report

    def _write_stage(self, network, arm, seed, stage, info, report, val, test) -> None:
        folder = self.output_dir / arm / f"seed_{seed}" / stage.name
        folder.mkdir(parents=True, exist_ok=True)
        val_y, val_probs, threshold = val
        test_y, test_probs, pred = test
        positive = self.positive if self.positive is not None else 1
        val_pred = cls.predict_labels(val_probs, threshold, positive=positive)
        out.write_predictions_csv(folder / "validation_predictions.csv", self.data.datalist["validation"], val_y,
                                  val_probs, val_pred, self.classes)
        out.write_predictions_csv(folder / "predictions.csv", self.data.datalist["test"], test_y, test_probs, pred,
                                  self.classes)
        extra = {"arm": arm, "seed": seed, "stage": stage.name, "training_counts": stage.counts,
                 "threshold_rule": self.threshold_rule if threshold is not None else "argmax",
                 "threshold_chosen_on": "validation", "best_validation_auc": info["best_metric"],
                 "best_epoch": info["best_epoch"], "epochs_run": info["epochs"], "datalist": str(self.data.path),
                 "synthetic_datalist": None if self.synthetic_path is None else str(self.synthetic_path)}
        out.write_metrics_json(folder / "metrics.json", report, extra)
        out.write_text(folder / "metrics.md", f"# {arm}, seed {seed}, {stage.name}\n\n{out.metrics_table(report)}\n")
        plots.plot_roc(folder / "roc.png", test_y, test_probs, self.classes, self.positive)
        plots.plot_pr(folder / "pr.png", test_y, test_probs, self.classes, self.positive)
        plots.plot_confusion(folder / "confusion.png", report["confusion_matrix"], self.classes)
        torch.save(network.state_dict(), folder / "model.pt")
        writer = self._writer(f"{arm}/seed_{seed}/{stage.name}")
        out.write_tensorboard(writer, report, prefix="test")
        writer.close()

    def _summarise(self, arm: str, per_seed: dict) -> None:
        stages = list(next(iter(per_seed.values())))
        aggregate = {stage: cls.aggregate_seeds([per_seed[s][stage] for s in per_seed]) for stage in stages}
        summary = {"arm": arm, "seeds": {str(s): r for s, r in per_seed.items()}, "aggregate": aggregate}
        folder = self.output_dir / arm
        _write_json(folder / "metrics.json", summary)
        lines = [f"# Arm {arm}: {len(per_seed)} seed(s) {list(per_seed)}", ""]
        for stage in stages:
            lines += [f"## {stage}, seed {self.seeds[0]}", "", out.metrics_table(per_seed[self.seeds[0]][stage]), ""]
        if len(per_seed) > 1:
            positive = per_seed[self.seeds[0]][stages[0]]["positive_class"]
            lines += ["## Mean +- sd over seeds", "", out.seeds_table({f"{arm}/{s}": aggregate[s] for s in stages},
                                                                       positive_class=positive)]
        out.write_text(folder / "metrics.md", "\n".join(lines) + "\n")

    def _export(self, arm: str, seed: int, network: nn.Module, reports: dict) -> None:
        stage, report = list(reports.items())[-1]
        self.model_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.model_path.with_name(self.model_path.name + ".tmp")
        torch.save(network.state_dict(), tmp)
        os.replace(tmp, self.model_path)
        network_args = dict(getattr(self.network_def, "keywords", {}))  # the bundle's network_factory partial
        info = {"arm": arm, "seed": seed, "stage": stage, "architecture": network_args.get("name"),
                "dropout": network_args.get("dropout"), "classes": self.classes, "threshold": report["threshold"],
                "positive_class": report["positive_class"], "image_size": self.image_size,
                "intensity_range": self.range, "datalist": str(self.data.path)}
        _write_json(Path(str(self.model_path) + ".json"), info)
        logger.info("exported %s (arm %s, seed %d, %s) to %s", stage, arm, seed, "threshold "
                    f"{report['threshold']:.4f}" if report["threshold"] is not None else "argmax", self.model_path)


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(path, json.dumps(obj, indent=2) + "\n")


def scored_runs(output_dir: str | os.PathLike) -> dict[str, dict[int, Path]]:
    """``{"arm" or "arm/stage": {seed: stage folder}}`` of every scored stage found under ``output_dir``."""
    runs: dict[str, dict[int, Path]] = {}
    for csv in sorted(Path(output_dir).glob("*/seed_*/*/predictions.csv")):
        folder = csv.parent
        arm, seed = folder.parents[1].name, int(folder.parent.name.removeprefix("seed_"))
        name = arm if folder.name in ("train", "finetune") else f"{arm}/{folder.name}"
        runs.setdefault(name, {})[seed] = folder
    return runs


def write_comparison(output_dir: str | os.PathLike, n_resamples: int = 1000) -> dict | None:
    """Compare every arm under ``output_dir`` with the ``real`` arm, seed by seed, on the same test images.

    Writes ``comparison.json`` and ``comparison.md``; returns the JSON, or None when there is no ``real`` arm
    or nothing to compare it with (logged).
    """
    output_dir = Path(output_dir)
    runs = scored_runs(output_dir)
    if BASELINE not in runs or len(runs) < 2:
        logger.info("no comparison written: %s", "run the 'real' arm into the same output_dir to compare with it"
                    if BASELINE not in runs else "only the 'real' arm has run")
        return None
    result, lines = {}, ["# Arms compared with the real arm (same real test split)", ""]
    for seed in sorted(runs[BASELINE]):
        base = _load_run(runs[BASELINE][seed])
        rows, result[str(seed)] = [(BASELINE, base["report"], None)], {}
        for name, seeds in runs.items():
            if name == BASELINE or seed not in seeds:
                continue
            other = _load_run(seeds[seed])
            if other["images"] != base["images"] or not np.array_equal(other["y"], base["y"]):
                raise InputError(seeds[seed] / "predictions.csv",
                                 f"predicted other test images than the real arm ({runs[BASELINE][seed]}); "
                                 "arms are compared only on the same test split")
            positive = base["report"]["classes"].index(base["report"]["positive_class"]) \
                if base["report"].get("positive_class") else None
            comparison = cls.compare_predictions(base["y"], base["probs"], base["pred"], other["probs"], other["pred"],
                                                 positive=positive, n_resamples=n_resamples, seed=seed)
            rows.append((name, other["report"], comparison))
            result[str(seed)][name] = comparison
        lines += [f"## Seed {seed}", "", out.comparison_table(rows, baseline=BASELINE), ""]
    aggregates = _seed_aggregates(runs)
    if aggregates:
        positive = _load_run(next(iter(runs[BASELINE].values())))["report"].get("positive_class")
        lines += ["## Mean +- sd over seeds", "", out.seeds_table(aggregates, positive_class=positive), ""]
    _write_json(output_dir / "comparison.json", {"baseline": BASELINE, "seeds": result})
    out.write_text(output_dir / "comparison.md", "\n".join(lines))
    return result


def _seed_aggregates(runs: dict[str, dict[int, Path]]) -> dict[str, dict]:
    if max(len(seeds) for seeds in runs.values()) < 2:
        return {}
    return {name: cls.aggregate_seeds([_load_run(folder)["report"] for folder in seeds.values()])
            for name, seeds in runs.items()}


def _load_run(folder: Path) -> dict:
    report = json.loads((folder / "metrics.json").read_text())
    images, y, probs, pred, _ = out.read_predictions_csv(folder / "predictions.csv")
    return {"report": report, "images": list(images), "y": np.asarray(y), "probs": np.asarray(probs),
            "pred": np.asarray(pred)}
