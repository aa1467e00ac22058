"""Benchmark: CT lesion-ROI extraction throughput, and DataLoader epochs uncached vs ``CacheDataset``.

Builds the CT demo set (``write_demo_dataset("ct", ...)``) in a temporary folder, cuts its ROIs with
``datalist_from_volumes`` (NIfTI + mask route), then times epochs over the training split:

* uncached: ``monai.data.Dataset``; every item reads its cached ROI file (64x64 int16 ``.nii.gz``) from
  disk and runs the CT load preset (load, window, resize, to tensor);
* cached: ``monai.data.CacheDataset``; the preset's outputs sit in RAM, an epoch only collates them.

Reading the CT volumes is in neither epoch: the ROI files were written once, before. Usage::

    python benchmarks/bench_ct_cache.py [--n 182] [--epochs 5] [--batch-size 32] [--workers 0]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path


def _epoch(loader) -> float:
    start = time.perf_counter()
    for batch in loader:
        batch["image"].sum()  # touch the data
    return time.perf_counter() - start


def _extract(manifest: Path, out: Path) -> tuple[Path, float]:
    from medsynth.data.roi import datalist_from_volumes

    start = time.perf_counter()
    path = datalist_from_volumes(manifest, out, seed=0)
    return path, time.perf_counter() - start


def _dicom_manifest(root: Path, path: Path) -> Path:
    """``lesions.csv`` rewritten for the centroid route on the DICOM series (no masks)."""
    with open(root / "lesions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        columns = ["label", "patient_id", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "diameter_mm"]
        writer = csv.writer(f)
        writer.writerow(["volume", *columns])
        writer.writerows([[str(root / r["dicom_series"]), *(r[c] for c in columns)] for r in rows])
    return path


def _loaders(datalist: dict, args: argparse.Namespace):
    from monai.data import CacheDataset, DataLoader, Dataset

    from medsynth.data.transforms import load_preset

    preset = load_preset("ct", spatial_size=(64, 64), window=datalist["window"])
    items = datalist["training"]
    options = {"batch_size": args.batch_size, "shuffle": True, "num_workers": args.workers,
               "persistent_workers": args.workers > 0}
    start = time.perf_counter()
    cached = CacheDataset(items, preset, num_workers=max(args.workers, 1), progress=False)
    build = time.perf_counter() - start
    cached_loader = DataLoader(cached, **options)
    first = build + _epoch(cached_loader)
    return DataLoader(Dataset(items, preset), **options), cached_loader, first, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=182, help="lesions in the demo set (default 182)")
    parser.add_argument("--epochs", type=int, default=5, help="timed steady-state epochs per arm")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from medsynth.data.datalist import load_datalist
    from medsynth.demo.writer import write_demo_dataset

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        demo = write_demo_dataset("ct", Path(tmp) / "demo", n=args.n, seed=0)
        print(f"demo CT set: {sum(demo.counts.values())} lesions in {demo.n_patients} volumes "
              f"({time.perf_counter() - start:.1f} s to write)")
        tmp, n_rois = Path(tmp), sum(demo.counts.values())
        dicom_csv = _dicom_manifest(demo.root, tmp / "manifest" / "dicom.csv")
        _extract(demo.root / "lesions.csv", tmp / "warmup")  # imports and reader set-up out of the timing
        _extract(dicom_csv, tmp / "warmup-dicom")
        for name, manifest in [("NIfTI volume + mask", demo.root / "lesions.csv"),
                               ("DICOM series + centroid", dicom_csv)]:
            path, seconds = _extract(manifest, tmp / name.split()[0])
            print(f"ROI extraction, {name} -> 64x64 int16 HU NIfTI: {n_rois / seconds:.1f} ROIs/s, "
                  f"{demo.n_patients / seconds:.2f} volumes/s ({seconds:.2f} s)")
        path = _extract(demo.root / "lesions.csv", tmp / "rois")[0]
        print(f"re-run with the ROI cache: {_extract(demo.root / 'lesions.csv', tmp / 'rois')[1]:.3f} s")
        datalist = load_datalist(path)
        uncached, cached, first, build = _loaders(datalist, args)
        times: dict[str, list[float]] = {"uncached": [], "cached": []}
        for _ in range(args.epochs):  # alternate the arms so drifts in machine load hit both
            times["uncached"].append(_epoch(uncached))
            times["cached"].append(_epoch(cached))
    n_train = len(datalist["training"])
    med = {arm: statistics.median(t) for arm, t in times.items()}
    print(f"training split: {n_train} ROIs, batch {args.batch_size}, workers {args.workers}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print("compared: Dataset re-reading ROI .nii.gz + CT preset every epoch  vs  CacheDataset (RAM); "
          "volume reading is in neither")
    print(f"CacheDataset first epoch (builds the cache): {first:.3f} s (cache build {build:.3f} s)")
    for arm in ("uncached", "cached"):
        print(f"{arm:>8} steady-state epoch: median {med[arm]:.4f} s "
              f"({n_train / med[arm]:.0f} images/s; {', '.join(f'{t:.4f}' for t in times[arm])})")
    print(f"ratio uncached / cached epoch time: {med['uncached'] / med['cached']:.1f}x")


if __name__ == "__main__":
    main()
