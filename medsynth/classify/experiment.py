"""The classifier bundle's experiment: arms x seeds x stages, each scored on the same real test split.

The settings are an :class:`~medsynth.classify.spec.ExperimentSpec`. For every arm
(:mod:`medsynth.classify.arms`) and seed, each stage trains a fresh network (or, for a warm start's
fine-tuning, the pre-trained one) with :func:`~medsynth.classify.engine.train_stage`, keeps the weights of
its best validation epoch, chooses the decision threshold on the **validation** predictions
(:func:`~medsynth.stats.classification.choose_threshold`), and only then predicts the test split, scored and
written by :func:`~medsynth.classify.scoring.score_and_write` (as the bundle's inference is). Files::

    <output_dir>/<arm>/seed_<s>/<stage>/   metrics.json  metrics.md  predictions.csv  validation_predictions.csv
                                           roc.png  pr.png  confusion.png  model.pt
    <output_dir>/<arm>/metrics.json|md     every seed's reports, and mean +- sd over seeds
    <output_dir>/comparison.json|md        every arm found in output_dir against the ``real`` arm, paired on the
                                           same test images (McNemar, DeLong, paired bootstrap), seed by seed
                                           and where each synthetic arm's set came from (synthetic_provenance)
    <output_dir>/tensorboard/<arm>/seed_<s>/<stage>
    <model_path>, <model_path>.json        the first seed's last scored network of the last arm, its threshold

Arms run in separate commands into one ``output_dir`` are compared too: the comparison is rebuilt from the
prediction files on disk, after checking that both arms predicted the same test images.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import torch
from monai.utils import set_determinism
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from medsynth.classify.arms import (
    NEEDS_SYNTHETIC,
    Stage,
    arm_stages,
    check_synthetic_provenance,
    load_synthetic,
    refuse_synthetic_in_evaluation,
    select_synthetic,
)
from medsynth.classify.engine import (
    class_weights,
    new_epoch_per_pass,
    predict,
    steps_per_epoch,
    train_stage,
    training_loader,
)
from medsynth.classify.scoring import patient_ids, score_and_write
from medsynth.classify.spec import ExperimentSpec
from medsynth.data.training import TrainingData
from medsynth.engines.distributed import is_rank0, world_size
from medsynth.errors import InputError, refuse_output_inside
from medsynth.fileio import atomic_write, atomic_write_json, atomic_write_text, read_json
from medsynth.progress import progress
from medsynth.stats import classification as cls
from medsynth.stats import comparison as cmp
from medsynth.stats import tables as out

logger = logging.getLogger(__name__)

BASELINE = "real"
POWER_DESIGN = "design"  # the power statement of the test set itself, not of one arm


class ClassifierExperiment:
    """Runs the arms of one experiment; see the module docstring.

    Args:
        data: the real datalist (train / validation / test).
        network_def: ``() -> nn.Module``, a fresh network per stage and seed.
        optimizer: ``(params, lr_factor) -> Optimizer`` (:func:`~medsynth.classify.engine.optimizer_factory`).
        spec: every other setting (arms, seeds, synthetic set, epochs, threshold rule, output folder ...),
            checked when it was built.
        inferer: the MONAI inferer of the validation runs (default ``SimpleInferer``).
        max_epochs: replaces ``spec.max_epochs`` when given. MONAI's bundle workflow requires this key
            (its ``max_epochs`` property is ``train#trainer#max_epochs``) and may set it.
    """

    def __init__(self, data: TrainingData, network_def: Callable[[], nn.Module], optimizer: Callable,
                 spec: ExperimentSpec, inferer=None, max_epochs: int | None = None) -> None:
        if not isinstance(spec, ExperimentSpec):
            raise TypeError(f"spec must be an ExperimentSpec, got {type(spec).__name__}")
        if max_epochs is not None:
            spec = dataclasses.replace(spec, max_epochs=max_epochs)
        self.data, self.network_def, self.optimizer, self.spec = data, network_def, optimizer, spec
        # ExperimentSpec.__post_init__ has turned its paths into Path objects
        self.output_dir, self.arms, self.seeds = cast(Path, spec.output_dir), spec.arms, spec.seed_list
        self.synthetic_path = cast("Path | None", spec.synthetic_datalist)
        self.model_path = cast("Path | None", spec.model_path)
        self.device = torch.device(spec.device)
        self.inferer = inferer
        self.classes = data.classes
        self.positive = data.minority_class if data.num_classes == 2 else None
        self.synthetic_provenance: str | None = None  # set by _check when there is a synthetic set
        self._check()

    # -- checks ---------------------------------------------------------------------------------------------
    def _check(self) -> None:
        """Refuse, before anything is trained: outputs inside the inputs, a class missing from validation or
        test, a synthetic image in validation or test, and a synthetic set of the wrong provenance
        (:func:`~medsynth.classify.arms.check_synthetic_provenance`)."""
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
        refuse_synthetic_in_evaluation(self.data.datalist, self.data.path)
        if self.synthetic_path is not None:
            self.synthetic_provenance = check_synthetic_provenance(
                self.synthetic_path, self.data.datalist, self.data.path,
                allow_foreign=self.spec.allow_foreign_synthetic)
            logger.info("synthetic set %s: %s", self.synthetic_path, self.synthetic_provenance)

    # -- data -----------------------------------------------------------------------------------------------
    def _dataset(self, items: list[dict], augment: bool, seed: int):
        from medsynth.data.datasets import make_dataset

        # only what the network reads: real and synthetic items carry different provenance keys, which a batch
        # cannot collate
        items = [{"image": it["image"], "label": it["label"]} for it in items]
        spec = self.spec
        transform = self.data.transform(spec.image_size, augment=augment, seed=seed, range=spec.intensity_range)
        return make_dataset({"training": items}, "training", transform, cache=spec.cache, num_workers=spec.num_workers)

    def _eval_loader(self, split: str):
        from torch.utils.data import DataLoader

        dataset = self._dataset(self.data.datalist[split], augment=False, seed=0)
        return DataLoader(dataset, batch_size=64, shuffle=False, num_workers=self.spec.num_workers)

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train and score every arm and seed; returns ``{arm: {seed: {stage: report}}}``.

        Every arm's stages are built first (a stage that cannot be trained stops the run before any training),
        and with them the steps per epoch of every stage (``spec.steps_per_epoch``,
        :func:`~medsynth.classify.engine.steps_per_epoch`).
        """
        spec, training = self.spec, self.data.datalist["training"]
        synthetic = load_synthetic(self.synthetic_path, self.data.datalist) if self.synthetic_path else None
        # the synthetic images each seed adds (the same pick for every arm of that seed)
        selected = {seed: select_synthetic(training, synthetic, self.classes, count=spec.synthetic_count,
                                           target_ratio=spec.target_ratio, seed=seed)
                    for seed in self.seeds} if synthetic is not None else {}
        plan = {arm: {seed: arm_stages(arm, training, selected.get(seed) if arm in NEEDS_SYNTHETIC else None,
                                       self.classes, rebalance=spec.rebalance, phases=spec.phases, seed=seed)
                      for seed in self.seeds} for arm in self.arms}
        # matched: the largest training set of any stage run here, and the synthetic arm's (real + selected
        # synthetic images) whether it runs here or not, so that arms run in separate commands match too
        sizes = [len(stage.training) for per_seed in plan.values() for stages in per_seed.values() for stage in stages]
        sizes += [len(training) + len(chosen) for chosen in selected.values()]
        epoch_length = steps_per_epoch(spec.steps_per_epoch, max(sizes), spec.batch_size,
                                       world_size() if spec.distributed else 1)
        logger.info("steps per epoch: %s (%s; largest training set %d images, batch_size %d)",
                    "one pass over each stage's training set" if epoch_length is None else epoch_length,
                    spec.steps_per_epoch, max(sizes), spec.batch_size)
        val_loader, test_loader = self._eval_loader("validation"), self._eval_loader("test")
        results: dict = {}
        last = None
        # one step per arm and seed (rank 0 only; shown on a terminal): each step trains and scores its stages
        runs = progress(total=len(self.arms) * len(self.seeds), desc="classifier arms x seeds", unit="run",
                        disable=None if is_rank0() else True)
        for arm in self.arms:
            results[arm] = {}
            for seed in self.seeds:
                runs.set_postfix_str(f"{arm}, seed {seed}", refresh=False)
                set_determinism(seed=seed)
                results[arm][seed], network = self._run_stages(arm, seed, plan[arm][seed], val_loader, test_loader,
                                                               epoch_length)
                if seed == self.seeds[0]:
                    last = (arm, seed, network, results[arm][seed])
                runs.update()
            if is_rank0():
                self._summarise(arm, results[arm])
        runs.close()
        if is_rank0():
            write_comparison(self.output_dir, self.spec.n_resamples, self.spec.primary_endpoint)
            if self.model_path is not None and last is not None:
                self._export(*last)
        return results

    def _run_stages(self, arm: str, seed: int, stages: list[Stage], val_loader, test_loader,
                    epoch_length: int | None = None) -> tuple[dict, nn.Module]:
        trained: dict[str, dict[str, torch.Tensor]]
        network: nn.Module | None
        reports, trained, network = {}, {}, None
        for stage in stages:
            logger.info("arm %s seed %d stage %s: training on %s", arm, seed, stage.name, stage.counts)
            network = self.network_def()
            if stage.init_from is not None:
                network.load_state_dict(trained[stage.init_from])
            network, info = self._train(network, stage, seed, val_loader, f"{arm}/seed_{seed}/{stage.name}",
                                        epoch_length)
            trained[stage.name] = {k: v.detach().clone() for k, v in network.state_dict().items()}
            if stage.scored:
                reports[stage.name] = self._score(network, arm, seed, stage, info, val_loader, test_loader)
            elif is_rank0():  # a warm start's pre-trained network: kept, with what it was trained on
                folder = self.output_dir / arm / f"seed_{seed}" / stage.name
                _save_state(network, folder / "model.pt")
                atomic_write_json(folder / "stage.json", {"arm": arm, "seed": seed, "stage": stage.name,
                                                          "training_counts": stage.counts, **info})
        assert network is not None  # arm_stages gives at least one stage
        return reports, network

    def _train(self, network: nn.Module, stage: Stage, seed: int, val_loader, tag: str,
               epoch_length: int | None = None) -> tuple[nn.Module, dict]:
        """Train one stage; ``info`` also holds ``training_images``, ``steps_per_epoch`` and ``optimizer_steps``."""
        spec = self.spec
        network = network.to(self.device)
        model = network
        if spec.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            # a frozen backbone gets no gradients in the head-only epochs: DDP must not wait for them
            model = nn.parallel.DistributedDataParallel(network, device_ids=device_ids,
                                                        find_unused_parameters=spec.freeze_epochs > 0)
        labels = [it["label"] for it in stage.training]
        loader = training_loader(self._dataset(stage.training, stage.augment, seed), labels, spec.batch_size,
                                 oversample=stage.rebalance == "oversample", seed=seed, num_workers=spec.num_workers,
                                 distributed=spec.distributed)
        weight = class_weights(labels, len(self.classes)) if stage.rebalance == "weights" else None
        loss = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(self.device))
        epochs = spec.stage_pretrain_epochs if stage.name == "pretrain" else spec.max_epochs
        # distributed: training_loader's sampler is a DistributedSampler, given a new epoch before every pass over
        # the data, also when one epoch holds several passes
        hook = new_epoch_per_pass(cast(DistributedSampler, loader.sampler)) if spec.distributed else None
        writer = self._writer(tag)
        try:
            _, info = train_stage(model, loader, val_loader, num_classes=len(self.classes),
                                  optimizer=self.optimizer, loss_function=loss, max_epochs=epochs,
                                  patience=spec.patience, freeze_epochs=spec.freeze_epochs,
                                  finetune_lr_factor=spec.finetune_lr_factor, device=self.device, amp=spec.amp,
                                  summary_writer=writer, log_interval=spec.log_interval, epoch_hook=hook,
                                  inferer=self.inferer, epoch_length=epoch_length)
        finally:
            if writer is not None:
                writer.close()
        info["training_images"] = len(stage.training)
        logger.info("%s: best validation ROC-AUC %.4f at epoch %d of %d (%d images, %d steps per epoch, %d run)", tag,
                    info["best_metric"], info["best_epoch"], info["epochs"], info["training_images"],
                    info["steps_per_epoch"], info["optimizer_steps"])
        return network, info

    def _writer(self, tag: str):
        if not is_rank0():
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.output_dir / "tensorboard" / tag))

    def _score(self, network: nn.Module, arm: str, seed: int, stage: Stage, info: dict, val_loader,
               test_loader) -> dict:
        """Threshold from validation predictions only, then the test split's report and files."""
        spec = self.spec
        val_probs, val_y = predict(network, val_loader, self.device, spec.amp)
        threshold = None
        if self.positive is not None:
            threshold = cls.choose_threshold((val_y == self.positive).astype(int), val_probs[:, self.positive],
                                             rule=spec.threshold_rule)
        test_probs, test_y = predict(network, test_loader, self.device, spec.amp)
        folder = self.output_dir / arm / f"seed_{seed}" / stage.name
        write = is_rank0()
        if write:
            positive = self.positive if self.positive is not None else 1
            val_pred = cls.predict_labels(val_probs, threshold, positive=positive)
            out.write_predictions_csv(folder / "validation_predictions.csv", self.data.datalist["validation"], val_y,
                                      val_probs, val_pred, self.classes)
        extra = {"arm": arm, "seed": seed, "stage": stage.name, "training_counts": stage.counts,
                 "threshold_rule": spec.threshold_rule if threshold is not None else "argmax",
                 "threshold_chosen_on": "validation", "best_validation_auc": info["best_metric"],
                 "best_epoch": info["best_epoch"], "epochs_run": info["epochs"],
                 "training_images": info["training_images"], "steps_per_epoch": info["steps_per_epoch"],
                 "steps_per_epoch_rule": spec.steps_per_epoch, "optimizer_steps": info["optimizer_steps"],
                 "datalist": str(self.data.path),
                 "synthetic_datalist": None if self.synthetic_path is None else str(self.synthetic_path),
                 "synthetic_provenance": self.synthetic_provenance if arm in NEEDS_SYNTHETIC else None}
        _, report = score_and_write(folder, self.data.datalist["test"], test_y, test_probs, self.classes,
                                    threshold=threshold, positive=self.positive, n_resamples=spec.n_resamples,
                                    groups=patient_ids(self.data.datalist["test"]),
                                    seed=seed, extra=extra, title=f"{arm}, seed {seed}, {stage.name}", plots=True,
                                    write=write)
        assert report is not None  # _check: every class is in the test split, and test labels are known
        if write:
            _save_state(network, folder / "model.pt")
            writer = self._writer(f"{arm}/seed_{seed}/{stage.name}")
            out.write_tensorboard(writer, report, prefix="test")
            writer.close()
        return report

    def _summarise(self, arm: str, per_seed: dict) -> None:
        stages = list(next(iter(per_seed.values())))
        aggregate = {stage: cmp.aggregate_seeds([per_seed[s][stage] for s in per_seed]) for stage in stages}
        summary = {"arm": arm, "seeds": {str(s): r for s, r in per_seed.items()}, "aggregate": aggregate}
        folder = self.output_dir / arm
        atomic_write_json(folder / "metrics.json", summary)
        lines = [f"# Arm {arm}: {len(per_seed)} seed(s) {list(per_seed)}", ""]
        for stage in stages:
            lines += [f"## {stage}, seed {self.seeds[0]}", "", out.metrics_table(per_seed[self.seeds[0]][stage]), ""]
        if len(per_seed) > 1:
            positive = per_seed[self.seeds[0]][stages[0]]["positive_class"]
            lines += ["## Mean +- sd over seeds", "", out.seeds_table({f"{arm}/{s}": aggregate[s] for s in stages},
                                                                       positive_class=positive)]
        atomic_write_text(folder / "metrics.md", "\n".join(lines) + "\n")

    def _export(self, arm: str, seed: int, network: nn.Module, reports: dict) -> None:
        stage, report = list(reports.items())[-1]
        assert self.model_path is not None  # run() exports only with a model_path
        _save_state(network, self.model_path)
        network_args = dict(getattr(self.network_def, "keywords", {}))  # the bundle's network_factory partial
        info = {"arm": arm, "seed": seed, "stage": stage, "architecture": network_args.get("name"),
                "dropout": network_args.get("dropout"), "classes": self.classes, "threshold": report["threshold"],
                "positive_class": report["positive_class"], "image_size": self.spec.image_size,
                "intensity_range": self.spec.intensity_range, "datalist": str(self.data.path)}
        atomic_write_json(Path(str(self.model_path) + ".json"), info)
        logger.info("exported %s (arm %s, seed %d, %s) to %s", stage, arm, seed, "threshold "
                    f"{report['threshold']:.4f}" if report["threshold"] is not None else "argmax", self.model_path)


def _save_state(network: nn.Module, path: Path) -> Path:
    """``torch.save`` of the network's state dict to ``path``, atomically."""
    state = network.state_dict()
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def scored_runs(output_dir: str | os.PathLike) -> dict[str, dict[int, Path]]:
    """``{"arm" or "arm/stage": {seed: stage folder}}`` of every scored stage found under ``output_dir``."""
    runs: dict[str, dict[int, Path]] = {}
    for csv in sorted(Path(output_dir).glob("*/seed_*/*/predictions.csv")):
        folder = csv.parent
        arm, seed = folder.parents[1].name, int(folder.parent.name.removeprefix("seed_"))
        name = arm if folder.name in ("train", "finetune") else f"{arm}/{folder.name}"
        runs.setdefault(name, {})[seed] = folder
    return runs


def write_comparison(output_dir: str | os.PathLike, n_resamples: int = 1000,
                     primary_endpoint: str = "balanced_accuracy", n_permutations: int = 10000) -> dict | None:
    """Compare every arm under ``output_dir`` with the ``real`` arm on the same test images, the patient as the unit.

    The primary endpoint (:data:`~medsynth.stats.comparison.ENDPOINTS`) gets one inference per arm over the seeds
    both arms ran, Holm-corrected across the arms; every other difference is a secondary endpoint, seed by seed.
    Writes ``comparison.json`` and ``comparison.md``; returns the JSON, or None when there is no ``real`` arm or
    nothing to compare it with (logged).
    """
    output_dir = Path(output_dir)
    runs = scored_runs(output_dir)
    if BASELINE not in runs or len(runs) < 2:
        logger.info("no comparison written: %s", "run the 'real' arm into the same output_dir to compare with it"
                    if BASELINE not in runs else "only the 'real' arm has run")
        return None
    loaded = {name: {seed: _load_run(folder) for seed, folder in seeds.items()} for name, seeds in runs.items()}
    base_runs = loaded[BASELINE]
    first = next(iter(base_runs.values()))
    for name, seeds in loaded.items():
        for seed, run in seeds.items():
            reference = base_runs.get(seed, first)
            if run["images"] != reference["images"] or not np.array_equal(run["y"], reference["y"]):
                raise InputError(runs[name][seed] / "predictions.csv",
                                 f"predicted other test images than the real arm ({runs[BASELINE][min(base_runs)]}); "
                                 "arms are compared only on the same test split")
    report = first["report"]
    positive = report["classes"].index(report["positive_class"]) if report.get("positive_class") else None
    y, groups = first["y"], first["groups"]
    if positive is None and primary_endpoint != "balanced_accuracy":
        raise ValueError(f"primary_endpoint {primary_endpoint!r} needs a binary task; use balanced_accuracy")
    cohort = {**cmp.cohort(y, positive, groups), "positive_class": report.get("positive_class")}
    boot = {"n_resamples": n_resamples, "n_permutations": n_permutations}

    # primary endpoint: one inference per arm, over the seeds both arms ran; Holm across the arms
    primary: dict[str, dict] = {}
    for name, seeds in loaded.items():
        common = sorted(set(seeds) & set(base_runs))
        if name == BASELINE or not common:
            continue
        primary[name] = cmp.pooled_comparison(
            y, [(base_runs[s]["probs"], base_runs[s]["pred"]) for s in common],
            [(seeds[s]["probs"], seeds[s]["pred"]) for s in common], endpoint=primary_endpoint, positive=positive,
            groups=groups, seed=common[0], **boot)
        primary[name]["seeds"] = common
    holm = cmp.holm_adjust(primary)

    # secondary endpoints, seed by seed
    secondary: dict[str, dict] = {}
    lines = ["# Arms compared with the real arm (same real test split)", "", out.cohort_line(cohort), ""]
    provenance = _synthetic_provenance(runs)
    lines += [f"- synthetic_provenance ({name}): {line}" for name, line in provenance.items()]
    compute = _compute(loaded)
    lines += [f"- {out.compute_line(compute)}", ""]
    endpoint_name = cmp.ENDPOINT_NAMES[primary_endpoint]
    lines += [f"## Primary endpoint: Δ {endpoint_name} vs {BASELINE}", "",
              out.primary_table(primary, holm, endpoint_name, baseline=BASELINE), ""]
    power = {}
    for seed in sorted(base_runs):
        base = base_runs[seed]
        rows: list[tuple[str, dict, dict | None]] = [(BASELINE, base["report"], None)]
        secondary[str(seed)] = {}
        for name, seeds in loaded.items():
            if name == BASELINE or seed not in seeds:
                continue
            other = seeds[seed]
            comparison = cmp.compare_predictions(y, base["probs"], base["pred"], other["probs"], other["pred"],
                                                 positive=positive, groups=groups, seed=seed, **boot)
            rows.append((name, other["report"], comparison))
            secondary[str(seed)][name] = comparison
        if seed == min(base_runs) and positive is not None:
            # the design's power (independent errors at the real arm's recall), then each arm's with the
            # discordance observed against real (optimistic when few positive images are discordant)
            recall = (base["report"]["metrics"].get(f"recall/{report['positive_class']}") or {}).get("value")
            power[POWER_DESIGN] = cmp.power_statement(y, positive, groups, None, baseline_recall=recall)
            for name, comparison in secondary[str(seed)].items():
                if comparison.get("discordance_positive"):
                    power[name] = cmp.power_statement(y, positive, groups, comparison["discordance_positive"])
        lines += [f"## Secondary endpoints, seed {seed}", "", out.comparison_table(rows, baseline=BASELINE), ""]
        if positive is not None:
            lines += [f"Calibration and operating point, seed {seed} (secondary):", "",
                      out.calibration_table([(name, r) for name, r, _ in rows]), ""]
    power_lines = [line for name, p in power.items() if (line := out.power_line(p, name))]
    if power_lines:
        lines += ["## Power of this test set", "", *(f"- {line}" for line in power_lines), ""]
    aggregates = _seed_aggregates(loaded)
    if aggregates:
        lines += ["## Mean ± sd over seeds (description)", "",
                  out.seeds_table(aggregates, positive_class=report.get("positive_class")), ""]
    result = {"baseline": BASELINE, "primary_endpoint": primary_endpoint, "cohort": cohort,
              "synthetic_provenance": provenance, "compute": compute,
              "primary": {name: {**r, **holm[name]} for name, r in primary.items()}, "power": power,
              "seeds": secondary}
    atomic_write_json(output_dir / "comparison.json", result)
    atomic_write_text(output_dir / "comparison.md", "\n".join(lines))
    return result


def _compute(loaded: dict[str, dict[int, dict]]) -> dict[str, dict]:
    """``{arm: {"steps_per_epoch", "optimizer_steps", "training_images"}}`` of each arm's first seed."""
    found = {}
    for name, seeds in loaded.items():
        report = seeds[min(seeds)]["report"]
        found[name] = {key: report.get(key) for key in ("steps_per_epoch", "optimizer_steps", "training_images")}
    return found


def _synthetic_provenance(runs: dict[str, dict[int, Path]]) -> dict[str, str]:
    """``{arm: synthetic_provenance}`` of the runs whose metrics.json records where their synthetic set came from."""
    found: dict[str, str] = {}
    for name, seeds in runs.items():
        for folder in seeds.values():
            line = read_json(folder / "metrics.json").get("synthetic_provenance")
            if line:
                found.setdefault(name, line)
    return found


def _seed_aggregates(loaded: dict[str, dict[int, dict]]) -> dict[str, dict]:
    if max(len(seeds) for seeds in loaded.values()) < 2:
        return {}
    order = sorted(loaded, key=lambda name: name != BASELINE)  # the baseline first, then the arms as found
    return {name: cmp.aggregate_seeds([run["report"] for run in loaded[name].values()]) for name in order}


def _load_run(folder: Path) -> dict:
    report = read_json(folder / "metrics.json")
    images, y, probs, pred, _ = out.read_predictions_csv(folder / "predictions.csv")
    return {"report": report, "images": list(images), "y": np.asarray(y), "probs": np.asarray(probs),
            "pred": np.asarray(pred), "groups": out.read_patient_ids(folder / "predictions.csv")}
