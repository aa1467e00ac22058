"""How hard are the demo sets? Minority recall and balanced accuracy of two plain classifiers.

For each task and difficulty this writes the demo set (``medsynth.demo.writer.write_demo_dataset``) into a
temporary folder, reads the files back and trains, on patient-grouped 70/30 splits and with no class
weighting (the imbalance is left in on purpose):

(a) scikit-learn ``LogisticRegression`` on standardized 32x32 pixels (CT: a 32x32 crop, 80 mm, around each
    lesion on its widest slice, HU window [-100, 200]), averaged over ``--splits`` group splits; for CT
    also on each lesion's HU histogram inside its mask, which shows what the difficulty does to the lesions;
(b) a small CNN (3 conv blocks of 8/16/32 channels, global max pool; 32x32 input, X-ray 64x64 so the
    fracture gap survives) for ``--epochs`` epochs on CPU with plain cross-entropy, on the first split.

It prints per-class counts, minority-class recall and balanced accuracy. The demo is meant to be hard
enough that augmentation has room to help: at the default difficulty the skin minority recall should lie
well below 1 (about 0.4-0.8). Example::

    python benchmarks/demo_difficulty.py                       # all tasks, default difficulty
    python benchmarks/demo_difficulty.py --tasks skin --difficulties 0.2,0.5,0.8
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, recall_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.preprocessing import StandardScaler

from medsynth.demo.writer import DEMO_DEFAULTS, write_demo_dataset


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    """``(H, W[, C])`` float -> ``(C, side, side)`` float32 (area-averaged downsampling)."""
    image = image if image.ndim == 3 else image[..., None]
    out = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize((side, side), Image.BOX))
        for c in range(image.shape[-1])
    ]
    return np.stack(out).astype(np.float32)


def load_skin(root: Path, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(N, 3, side, side)`` in [0, 1], labels ``(N,)`` and patient ids ``(N,)``."""
    rows = _rows(root / "metadata.csv")
    images = [
        _resize(np.asarray(Image.open(root / "images" / f"{r['image_name']}.png")) / 255.0, side)
        for r in rows
    ]
    return (
        np.stack(images),
        np.array([int(r["target"]) for r in rows]),
        np.array([r["patient_id"] for r in rows]),
    )


def load_xray(root: Path, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-bit PNGs ``(N, 1, side, side)`` in [0, 1]; label 1 = fracture."""
    rows = _rows(root / "metadata.csv")
    images = [_resize(np.asarray(Image.open(root / r["png"])) / 255.0, side) for r in rows]
    labels = np.array([int(r["label"] == "fracture") for r in rows])
    return np.stack(images), labels, np.array([r["patient_id"] for r in rows])


def _lesions(root: Path):
    """``(row, volume (X, Y, Z), mask)`` per row of ``lesions.csv``; each volume is read once (rows are grouped)."""
    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for r in _rows(root / "lesions.csv"):
        if r["volume"] not in loaded:
            loaded = {r["volume"]: (np.asarray(nib.load(root / r["volume"]).dataobj),
                                    np.asarray(nib.load(root / r["mask"]).dataobj))}
        yield (r, *loaded[r["volume"]])


def load_ct(root: Path, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 32x32-voxel (80 mm) crop around each lesion on its widest slice, windowed, resized to ``side``."""
    classes = list(DEMO_DEFAULTS["ct"]["classes"])
    images, labels, groups = [], [], []
    for r, volume, mask in _lesions(root):
        ijk = np.argwhere(mask == int(r["mask_value"]))
        k = np.bincount(ijk[:, 2]).argmax()
        ci, cj = np.round(ijk[ijk[:, 2] == k, :2].mean(axis=0)).astype(int)
        padded = np.pad(volume[:, :, k], 16, constant_values=-1000)
        crop = padded[ci : ci + 32, cj : cj + 32].T  # (Y, X)
        images.append(_resize(np.clip((crop + 100.0) / 300.0, 0.0, 1.0), side))
        labels.append(classes.index(r["label"]))
        groups.append(r["patient_id"])
    return np.stack(images), np.array(labels), np.array(groups)


def ct_histograms(root: Path) -> np.ndarray:
    """Per lesion: the normalized histogram of its HU inside its mask (-50..250 HU, 15 HU bins)."""
    features = []
    for r, volume, mask in _lesions(root):
        hu = volume[mask == int(r["mask_value"])]
        features.append(np.histogram(hu, bins=np.arange(-50, 251, 15))[0] / len(hu))
    return np.stack(features).astype(np.float32)


LOADERS = {"skin": load_skin, "ct": load_ct, "xray": load_xray}
CNN_SIDE = {"skin": 32, "ct": 32, "xray": 64}


def minority_recall(y_true: np.ndarray, y_pred: np.ndarray, minority: int) -> float:
    return float(recall_score(y_true, y_pred, labels=[minority], average="macro", zero_division=0))


def logistic_scores(x, y, groups, splits: int, seed: int, minority: int) -> tuple[list[float], list[float]]:
    """Minority recall and balanced accuracy of standardized-pixel logistic regression per group split."""
    recalls, baccs = [], []
    for train, test in GroupShuffleSplit(splits, test_size=0.3, random_state=seed).split(x, y, groups):
        flat = x.reshape(len(x), -1)
        scaler = StandardScaler().fit(flat[train])
        model = LogisticRegression(max_iter=3000).fit(scaler.transform(flat[train]), y[train])
        pred = model.predict(scaler.transform(flat[test]))
        recalls.append(minority_recall(y[test], pred, minority))
        baccs.append(float(balanced_accuracy_score(y[test], pred)))
    return recalls, baccs


def cnn_scores(x, y, groups, epochs: int, seed: int, minority: int) -> tuple[float, float]:
    """Minority recall and balanced accuracy of a small CNN (plain cross-entropy) on the first group split.

    Inputs are standardized with the training mean/std; a global max pool lets a small local finding (a
    fracture gap) decide the class wherever it lies.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    train, test = next(GroupShuffleSplit(1, test_size=0.3, random_state=seed).split(x, y, groups))
    mean, std = x[train].mean(), x[train].std() + 1e-6
    xt, yt = torch.from_numpy((x[train] - mean) / std), torch.from_numpy(y[train]).long()

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

    net = nn.Sequential(
        block(x.shape[1], 8),
        block(8, 16),
        block(16, 32),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(32, int(y.max()) + 1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = net(torch.from_numpy((x[test] - mean) / std)).argmax(1).numpy()
    return minority_recall(y[test], pred, minority), float(balanced_accuracy_score(y[test], pred))


def run(task: str, difficulty: float, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        demo = write_demo_dataset(task, Path(tmp) / task, n=args.n, seed=args.seed, difficulty=difficulty)
        generated = time.perf_counter() - start
        x32, y, groups = LOADERS[task](demo.root, 32)
        side = CNN_SIDE[task]
        x_cnn = None if args.no_cnn else x32 if side == 32 else LOADERS[task](demo.root, side)[0]
        histograms = ct_histograms(demo.root) if task == "ct" else None
    minority = int(np.argmin(np.bincount(y)))
    counts = ", ".join(f"{k}={v}" for k, v in demo.counts.items())
    print(
        f"\n{task}  difficulty={difficulty:.2f}  n={len(y)} ({counts}), {demo.n_patients} patients, "
        f"minority={demo.classes[minority]}, generated in {generated:.1f} s"
    )
    recalls, baccs = logistic_scores(x32, y, groups, args.splits, args.seed, minority)
    print(
        f"  logistic regression, 32x32 pixels, {args.splits} group splits: minority recall "
        f"{np.mean(recalls):.2f} ± {np.std(recalls):.2f}, "
        f"balanced accuracy {np.mean(baccs):.2f} ± {np.std(baccs):.2f}"
    )
    if histograms is not None:  # the lesion's own densities: what the difficulty acts on
        recalls, baccs = logistic_scores(histograms, y, groups, args.splits, args.seed, minority)
        print(
            f"  logistic regression, HU histogram inside the lesion mask: minority recall "
            f"{np.mean(recalls):.2f}, balanced accuracy {np.mean(baccs):.2f} ± {np.std(baccs):.2f}"
        )
    if x_cnn is not None:
        recall, bacc = cnn_scores(x_cnn, y, groups, args.epochs, args.seed, minority)
        print(
            f"  small CNN, {side}x{side}, {args.epochs} epochs, split 1: minority recall {recall:.2f}, "
            f"balanced accuracy {bacc:.2f}"
        )
    print(f"  ({time.perf_counter() - start:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="skin,ct,xray")
    parser.add_argument(
        "--difficulties", default=None, help="comma-separated, e.g. 0.2,0.5,0.8 (default: each task's)"
    )
    parser.add_argument("--n", type=int, default=None, help="items per set (default: each task's n)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--no-cnn", action="store_true")
    args = parser.parse_args()
    for task in args.tasks.split(","):
        levels = (
            [DEMO_DEFAULTS[task]["difficulty"]] if args.difficulties is None else args.difficulties.split(",")
        )
        for difficulty in levels:
            run(task, float(difficulty), args)


if __name__ == "__main__":
    main()
