"""``evaluate_synthetic``: every metric of a synthetic set against real images, per class and overall.

Reads both sides (:mod:`medsynth.metrics.sets`), extracts features once per image file, computes
:func:`~medsynth.metrics.quality.quality_metrics`, MS-SSIM diversity and the memorization audit, and
writes ``report.json``, ``report.md`` and ``closest_pairs.png`` to the output folder
(:mod:`medsynth.metrics.report`). ``docs/metrics.md`` explains how to read them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

import medsynth
from medsynth.errors import InputError, refuse_output_inside
from medsynth.metrics.diversity import pairwise_ms_ssim, sample_pairs
from medsynth.metrics.features import Features, extract_features, resolve_device
from medsynth.metrics.images import FILTER, LEGACY_FILTER, load_unit_image, match_channels, resize
from medsynth.metrics.memorization import fraction_below_percentile, memorization_audit, write_pair_grid
from medsynth.metrics.quality import MetricSettings, bootstrap_interval, entry, quality_metrics
from medsynth.metrics.sets import DEFAULT_REAL_SPLIT, UNNAMED, ImageSet, RealSets, real_sets, synthetic_set

logger = logging.getLogger(__name__)
PIXEL_SPACE = "pixels ([0, 1] images, MS-SSIM)"  # the "extractor" of the diversity figures


def evaluate_synthetic(
    real: str | os.PathLike,
    synthetic: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    extractor: nn.Module | None = None,
    weights: str | os.PathLike | None = None,
    real_split: str = DEFAULT_REAL_SPLIT,
    real_heldout: str | os.PathLike | None = None,
    real_train: str | os.PathLike | None = None,
    window: Sequence[float] | None = None,
    legacy: bool = False,
    batch_size: int = 50,
    device: str | torch.device | None = None,
    settings: MetricSettings | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate ``synthetic`` (datalist or folder) against ``real`` (datalist or folder); write the report.

    Args:
        extractor: feature extractor (see :mod:`medsynth.metrics.features`); default pytorch-fid's
            Inception with ``weights`` resolved by :func:`~medsynth.metrics.inception.resolve_fid_weights`.
        real_split: FID reference split of a real datalist (``validation`` default, ``test``, ``training``,
            ``all``); the memorization audit's held-out images are the validation split (test with ``test``).
        real_train, real_heldout: with a real folder, the folders of the generator's training images and of
            real images it never saw (the memorization audit; both or neither).
        window: HU window ``(low, high)``; default the real datalist's, else the synthetic one's.
        legacy: pytorch-fid's 8-bit PNG pipeline (see :mod:`medsynth.metrics.images`).

    Returns:
        The report (also written as ``out_dir/report.json``).
    """
    from medsynth.metrics.report import write_report

    settings = settings or MetricSettings()
    refuse_output_inside(out_dir, [real, synthetic, real_heldout, real_train])
    if extractor is None:  # first: a missing weights file should not wait for a folder scan
        from medsynth.metrics.inception import fid_inception

        extractor = fid_inception(weights)
    real_side = real_sets(real, real_split, real_heldout, real_train)
    fake, fake_window = synthetic_set(synthetic)
    window = _choose_window(window, real_side, fake_window)
    sets = [real_side.reference, fake, *(s for s in (real_side.train, real_side.heldout) if s is not None)]
    paths = list(dict.fromkeys(p for s in sets for p in s.paths))
    logger.info("extracting %s features of %d images", extractor.name, len(paths))
    features = extract_features(paths, extractor, window=window, legacy=legacy, batch_size=batch_size,
                                device=device, progress=progress)
    name = cast(str, extractor.name)  # duck-typed (see medsynth.metrics.features); nn.Module says Tensor | Module
    run = _Run(name, window, settings, features, {p: i for i, p in enumerate(paths)})
    report = _header(real_side, fake, name, legacy, window, settings, device)
    report.update(_per_class_and_overall(real_side.reference, fake, run))
    report["memorization"] = _memorization(real_side, fake, Path(out_dir), run)
    write_report(report, out_dir)
    return report


@dataclass
class _Run:
    """What every metric of one evaluation shares: features of all images, by path."""

    extractor: str
    window: tuple[float, float] | None
    settings: MetricSettings
    features: Features
    row: dict[str, int]

    def of(self, images: ImageSet, indices: Sequence[int] | None = None) -> Features:
        """Features of ``images`` (or of its ``indices``)."""
        chosen = images.paths if indices is None else [images.paths[i] for i in indices]
        return self.features.subset([self.row[p] for p in chosen])


def _choose_window(window, real_side: RealSets, fake_window) -> tuple[float, float] | None:
    if window is not None:
        return float(window[0]), float(window[1])
    if real_side.window and fake_window and tuple(real_side.window) != tuple(fake_window):
        real_side.notes.append(f"the synthetic datalist's window {list(fake_window)} differs from the real "
                               f"one {list(real_side.window)}; both sides use the real one")
    return real_side.window or fake_window


def _header(real_side: RealSets, fake: ImageSet, extractor: str, legacy: bool, window,
            settings: MetricSettings, device) -> dict:
    return {
        "medsynth_version": medsynth.__version__,
        "extractor": extractor,
        "inputs": {"real_reference": real_side.reference.origin, "synthetic": fake.origin,
                   "real_training": getattr(real_side.train, "origin", None),
                   "real_heldout": getattr(real_side.heldout, "origin", None)},
        "roles": dict(real_side.roles),
        "preprocessing": {"mode": "legacy" if legacy else "clean",
                          "filter": LEGACY_FILTER if legacy else FILTER,
                          "window": None if window is None else list(window), "scale": "[0, 1] float"},
        "settings": settings.as_dict(),
        "device": str(resolve_device(device)),
        "notes": list(real_side.notes),
    }


def _shared_classes(reference: ImageSet, fake: ImageSet, notes: list[str]) -> list[str]:
    real_names, fake_names = set(reference.classes) - {UNNAMED}, set(fake.classes) - {UNNAMED}
    if not real_names or not fake_names:
        return []
    missing = sorted(fake_names - real_names)
    if missing:
        notes.append(f"synthetic classes without real reference images are left out: {', '.join(missing)}")
    return [c for c in fake.classes if c in real_names]


def _per_class_and_overall(reference: ImageSet, fake: ImageSet, run: _Run) -> dict:
    notes: list[str] = []
    classes = _shared_classes(reference, fake, notes)
    per_class = {c: _set_metrics(reference, reference.indices(c), fake, fake.indices(c), run)
                 for c in classes}
    real_idx = [i for c in classes for i in reference.indices(c)] if classes else list(range(len(reference)))
    fake_idx = [i for c in classes for i in fake.indices(c)] if classes else list(range(len(fake)))
    overall = _set_metrics(reference, real_idx, fake, fake_idx, run)
    fids = [m["fid"]["value"] for m in per_class.values() if m["fid"]["value"] is not None]
    if fids:
        overall["intra_class_fid"] = entry(float(np.mean(fids)), {"classes": len(fids)}, run.extractor,
                                           definition="mean of the per-class FIDs (StudioGAN's iFID)")
    return {"classes": per_class, "overall": overall, "class_notes": notes}


def _set_metrics(reference: ImageSet, real_idx: list[int], fake: ImageSet, fake_idx: list[int],
                 run: _Run) -> dict:
    metrics = quality_metrics(run.of(reference, real_idx), run.of(fake, fake_idx), run.extractor,
                              run.settings)
    fake_paths, real_paths = [fake.paths[i] for i in fake_idx], [reference.paths[i] for i in real_idx]
    size = tuple(load_unit_image(fake_paths[0], run.window).shape[-2:])
    metrics["ms_ssim"] = {"synthetic": _diversity(fake_paths, size, run),
                          "real": _diversity(real_paths, size, run)}
    return metrics


def _diversity(paths: list[str], size: tuple[int, int], run: _Run) -> dict:
    """Mean pairwise MS-SSIM over a seeded sample of pairs, images read again at ``size``."""
    from medsynth.metrics.diversity import ms_ssim_weights

    settings, n, space = run.settings, {"images": len(paths)}, PIXEL_SPACE
    if len(paths) < 2:
        return entry(None, n, space, note="needs at least 2 images")
    try:
        weights = ms_ssim_weights(*size)
    except ValueError as e:
        return entry(None, n, space, note=str(e))
    pairs = sample_pairs(len(paths), settings.ms_ssim_pairs, settings.seed)
    needed = np.unique(pairs)
    images = [torch.from_numpy(load_unit_image(paths[i], run.window))[None] for i in needed]
    channels = max(im.shape[1] for im in images)
    batch = torch.cat([resize(match_channels(im, channels), size) for im in images])
    values = pairwise_ms_ssim(batch, np.searchsorted(needed, pairs))
    interval = bootstrap_interval(lambda i: float(values[i].mean()), (len(values),), settings)
    return entry(float(values.mean()), n, space, interval, pairs=len(values), size=list(size),
                 scale_weights=list(weights))


def _memorization(real_side: RealSets, fake: ImageSet, out_dir: Path, run: _Run) -> dict:
    if real_side.train is None or real_side.heldout is None:
        reason = "; ".join(n for n in real_side.notes if "memorization" in n)
        return {"skipped": reason or "no held-out images"}
    train, held, settings = real_side.train, real_side.heldout, run.settings
    overlap = set(train.paths) & set(held.paths)
    if overlap:
        raise InputError(next(iter(overlap)),
                         "is both a training and a held-out image; the audit needs them apart")
    audit = memorization_audit(run.of(fake).features, run.of(train).features, run.of(held).features,
                               settings.memorization_percentile)
    percentile = audit.percentile
    interval = bootstrap_interval(
        lambda i, j: fraction_below_percentile(audit.distances[i], audit.heldout_distances[j], percentile),
        (len(audit.distances), len(audit.heldout_distances)), settings)
    closest = audit.closest(settings.grid_pairs)
    pairs = [{"synthetic": fake.paths[i], "training": train.paths[audit.nearest[i]],
              "distance": float(audit.distances[i]), "flagged": bool(audit.flagged[i])} for i in closest]
    grid = write_pair_grid([(load_unit_image(p["synthetic"], run.window),
                             load_unit_image(p["training"], run.window)) for p in pairs],
                           out_dir / "closest_pairs.png")
    by_class = {c: float(audit.flagged[fake.indices(c)].mean()) for c in fake.classes}
    n = {"synthetic": len(fake), "training": len(train), "heldout": len(held)}
    return {
        "fraction_flagged": entry(audit.fraction_flagged, n, run.extractor, interval,
                                  percentile=audit.percentile, threshold=audit.threshold),
        "fraction_flagged_by_class": by_class,
        "median_distance": {"synthetic_to_training": float(np.median(audit.distances)),
                            "heldout_to_training": float(np.median(audit.heldout_distances))},
        "closest_pairs": pairs,
        "grid": grid.name,
    }
