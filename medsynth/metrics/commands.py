"""The ``evaluate-synthetic`` and ``weights`` verbs, added to the ``medsynth`` parser by :func:`register`.

Importing this module is cheap (argparse only); the metrics load when a verb runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

EXTRACTORS = ("inception", "classifier", "random-inception", "random-cnn")


def _window(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. -100,200), got {text!r}") from None
    if not low < high:
        raise argparse.ArgumentTypeError(f"window LOW must be below HIGH, got {text!r}")
    return low, high


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``evaluate-synthetic`` and ``weights download`` to the ``medsynth`` sub-parsers ``verbs``."""
    _add_evaluate(verbs)
    weights = verbs.add_parser(
        "weights", help="fetch the FID Inception weights (on a machine that is online)",
        description="Manage the pytorch-fid Inception weights. medsynth never downloads them implicitly: "
                    "fetch them once with `weights download` (the Docker image does this at build time).")
    actions = weights.add_subparsers(dest="weights_action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "download", help="download pt_inception-2015-12-05-6726825d.pth (sha256-checked)",
        description="Download pytorch-fid's Inception weights from its GitHub release, check the sha256 "
                    "prefix and store them in DEST (default: the torch hub cache, "
                    "$TORCH_HOME/hub/checkpoints, where evaluate-synthetic looks). Copy the file to an "
                    "offline machine's cache, or point --weights or $MEDSYNTH_FID_WEIGHTS at it.")
    p.add_argument("--dest", type=Path, default=None, help="folder to store the file in")
    p.set_defaults(func=_download)


def _add_evaluate(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "evaluate-synthetic", help="FID/KID/IS/PRDC, diversity and memorization of a synthetic set",
        description="Compare synthetic images with real ones, per class and overall: FID beside the "
                    "real-vs-real FID, KID, improved precision/recall (k=3), density/coverage (k=5), "
                    "Inception Score, MS-SSIM diversity, and a nearest-neighbour memorization audit with a "
                    "grid of the closest pairs. Writes OUT/report.json, OUT/report.md and "
                    "OUT/closest_pairs.png. See docs/metrics.md.")
    p.add_argument("--real", required=True, type=Path,
                   help="real datalist JSON, or a folder (class sub-folders give per-class metrics)")
    p.add_argument("--synthetic", required=True, type=Path,
                   help="synthetic datalist JSON (items with source 'synthetic', all splits) or folder")
    p.add_argument("--out", required=True, type=Path, help="output folder (not inside an input folder)")
    p.add_argument("--real-split", default="validation", choices=["validation", "test", "training", "all"],
                   help="FID reference split of a real datalist, also the memorization audit's held-out images "
                        "(default validation: images the generator never saw, not the classifier's scoring "
                        "split; test only when asked for)")
    p.add_argument("--real-train", type=Path, default=None,
                   help="with a real folder: the folder of the generator's training images, the memorization "
                        "audit's nearest-neighbour side (with --real-heldout; --real is the FID reference only)")
    p.add_argument("--real-heldout", type=Path, default=None,
                   help="with a real folder: folder of real images the generator never saw, the memorization "
                        "audit's held-out side (with --real-train; without both the audit is skipped)")
    p.add_argument("--extractor", default="inception", choices=EXTRACTORS,
                   help="feature network: pytorch-fid's Inception (default), a trained classifier's layer, "
                        "or fixed-seed random networks (tests only)")
    p.add_argument("--weights", type=Path, default=None,
                   help="FID Inception weights file (default: $MEDSYNTH_FID_WEIGHTS, then the torch hub "
                        "cache)")
    g = p.add_argument_group("classifier extractor (--extractor classifier)")
    g.add_argument("--classifier-network", default=None,
                   help="dotted path of the network constructor, e.g. torchvision.models.resnet18")
    g.add_argument("--classifier-args", default="{}", type=json.loads,
                   help='JSON keyword arguments of the constructor, e.g. \'{"num_classes": 2}\'')
    g.add_argument("--classifier-checkpoint", type=Path, default=None, help="state dict file to load")
    g.add_argument("--classifier-state-key", default=None, help="key of the state dict inside the checkpoint")
    g.add_argument("--classifier-layer", default="avgpool", help="module whose output is the feature vector")
    g.add_argument("--classifier-size", type=int, default=64, help="input size the classifier was trained at")
    g.add_argument("--classifier-channels", type=int, default=1, choices=[1, 3], help="input channels")
    p.add_argument("--legacy", action="store_true",
                   help="pytorch-fid's PNG pipeline: 8-bit quantization and bilinear resize without "
                        "antialiasing")
    p.add_argument("--window", type=_window, default=None,
                   help="HU window LOW,HIGH for CT images (default: the datalist's 'window')")
    p.add_argument("--batch-size", type=int, default=50, help="images per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--bootstrap", type=int, default=50, help="bootstrap resamples per interval (0: none)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of subsets, pairs, bootstrap and random extractors")
    p.add_argument("--kid-subsets", type=int, default=100,
                   help="subsets of the subset-mean KID shown beside the full-set KID")
    p.add_argument("--ms-ssim-pairs", type=int, default=500, help="image pairs sampled per set for MS-SSIM")
    p.add_argument("--percentile", type=float, default=1.0,
                   help="memorization: flag synthetic images nearer to a training image than this "
                        "percentile of the held-out images' distances")
    p.add_argument("--grid-pairs", type=int, default=16, help="closest pairs shown in closest_pairs.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)


def _locate(dotted: str):
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"--classifier-network {dotted!r}: no such importable callable") from None


def build_extractor(args: argparse.Namespace):
    """The extractor the flags ask for."""
    from medsynth.metrics import features, inception

    if args.extractor == "inception":
        return inception.fid_inception(args.weights)
    if args.extractor == "random-inception":
        return inception.random_fid_inception(args.seed)
    if args.extractor == "random-cnn":
        return features.RandomCNNExtractor(args.seed)
    if not args.classifier_network:
        raise ValueError("--extractor classifier needs --classifier-network "
                         "(and usually --classifier-checkpoint)")
    network = _locate(args.classifier_network)(**args.classifier_args)
    size = (args.classifier_size, args.classifier_size)
    return features.ClassifierExtractor(network, args.classifier_checkpoint, args.classifier_layer,
                                        input_size=size, in_channels=args.classifier_channels,
                                        state_key=args.classifier_state_key)


def _evaluate(args: argparse.Namespace) -> dict:
    from medsynth.metrics.evaluate import evaluate_synthetic
    from medsynth.metrics.quality import MetricSettings
    from medsynth.metrics.report import fmt

    settings = MetricSettings(bootstrap=args.bootstrap, seed=args.seed, kid_subsets=args.kid_subsets,
                              ms_ssim_pairs=args.ms_ssim_pairs, memorization_percentile=args.percentile,
                              grid_pairs=args.grid_pairs)
    report = evaluate_synthetic(
        args.real, args.synthetic, args.out, extractor=build_extractor(args), real_split=args.real_split,
        real_heldout=args.real_heldout, real_train=args.real_train, window=args.window, legacy=args.legacy,
        batch_size=args.batch_size,
        device=args.device, settings=settings, progress=not args.no_progress)
    print(f"extractor: {report['extractor']}")
    for name, m in [*report["classes"].items(), ("overall", report["overall"])]:
        n = m["fid"]["n"]
        print(f"{name:>12}: FID {fmt(m['fid'])} (real-vs-real {fmt(m['fid_real_vs_real'])}), "
              f"KID {fmt(m['kid'])}, n real {n['real']}, n synthetic {n['synthetic']}")
    memo = report["memorization"]
    print("memorization: " + (f"skipped ({memo['skipped']})" if "skipped" in memo
                              else f"{fmt(memo['fraction_flagged'])} of synthetic images flagged"))
    print(f"wrote {Path(args.out) / 'report.json'} and report.md")
    return report


def _download(args: argparse.Namespace) -> Path:
    from medsynth.metrics.inception import download_fid_weights, fid_weights_url

    path = download_fid_weights(args.dest)
    print(f"FID Inception weights from {fid_weights_url()} are at {path}")
    return path
