"""Feature-extraction throughput: medsynth's Inception pipeline against pytorch-fid's own, same images.

Both sides run the same FID InceptionV3 with the same seeded random weights (no download; the weights'
values do not change the cost) on the same folder of PNGs written here (default 32 gray 64×64 images, the
size of a lesion ROI). pytorch-fid runs its ``get_activations`` (PIL ``convert("RGB")`` + ``ToTensor`` in a
``DataLoader`` with its CLI's default ``num_workers = min(cpus, 8)``, resize inside the network);
medsynth runs ``extract_features`` (``read_image`` in a background thread, [0, 1] float scaling, the
antialiased bilinear resize, then the network with batch norms folded and channels-last memory). Runs
alternate (pytorch-fid, medsynth, pytorch-fid, ...) after one untimed warm-up each, so machine load hits
both alike; the medians are compared. It also prints how far the two feature sets are apart.

    python benchmarks/bench_feature_extraction.py                   # CPU, about 2-3 minutes on 2 cores
    python benchmarks/bench_feature_extraction.py --device cuda --images 2000 --batch-size 100

Target: ratio (medsynth / pytorch-fid images per second) >= 1.0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_images(folder: Path, count: int, size: int, channels: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        shape = (size, size) if channels == 1 else (size, size, 3)
        paths.append(folder / f"{i:05d}.png")
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(paths[-1])
    return paths


def build(device: torch.device):
    from pytorch_fid.inception import InceptionV3

    from medsynth.metrics.inception import pytorch_fid_state, random_fid_inception, random_state

    with pytorch_fid_state(random_state(0)):
        theirs = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()
    return theirs, random_fid_inception(0).to(device)


def run_theirs(paths: list[Path], model, batch_size: int, args, device) -> np.ndarray:
    from pytorch_fid.fid_score import get_activations

    return get_activations(paths, model, batch_size=batch_size, dims=2048, device=device,
                           num_workers=args.workers)


def run_ours(paths: list[Path], extractor, batch_size: int, args, device) -> np.ndarray:
    from medsynth.metrics.features import extract_features

    return extract_features([str(p) for p in paths], extractor, batch_size=batch_size, device=device,
                            progress=False).features


def timed(fn, *fn_args) -> tuple[float, np.ndarray]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(*fn_args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32, help="images in the folder")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--channels", type=int, default=1, choices=[1, 3])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=min(len(os.sched_getaffinity(0)), 8),
                        help="pytorch-fid DataLoader workers (its CLI default: min(cpus, 8))")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp) / "images", args.images, args.size, args.channels)
        theirs_model, ours_model = build(device)
        run_theirs(paths[:4], theirs_model, 4, args, device)  # warm-up: allocator, kernels, imports
        run_ours(paths[:4], ours_model, 4, args, device)
        times: dict[str, list[float]] = {"pytorch-fid": [], "medsynth": []}
        for _ in range(args.repeats):
            seconds, theirs = timed(run_theirs, paths, theirs_model, args.batch_size, args, device)
            times["pytorch-fid"].append(seconds)
            seconds, ours = timed(run_ours, paths, ours_model, args.batch_size, args, device)
            times["medsynth"].append(seconds)
    rates = {name: args.images / statistics.median(values) for name, values in times.items()}
    print(f"device {device} ({torch.get_num_threads()} torch threads), {args.images} images of "
          f"{args.size}x{args.size}x{args.channels}, batch {args.batch_size}, {args.repeats} runs each")
    for name, values in times.items():
        runs = ", ".join(f"{args.images / v:.2f}" for v in values)
        print(f"{name:>12}: {rates[name]:.2f} images/s (median; runs: {runs})")
    print(f"ratio medsynth / pytorch-fid: {rates['medsynth'] / rates['pytorch-fid']:.2f}")
    gap = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"features: max |difference| / max |feature| = {gap:.1e}")


if __name__ == "__main__":
    main()
