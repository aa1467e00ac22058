"""Rejection rates under H0 of three paired tests of balanced accuracy, on data shaped like the demo test split.

Each simulated data set has the skin demo's test split layout (127 images from 91 patients, 15 positives: 49
patients with one negative image, 28 with two negatives, 7 with one of each, 6 with one positive and 1 with two
positives) and two *exchangeable* classifiers: every image has a latent difficulty, a patient effect plus an image
effect, and both arms' correct/incorrect calls are drawn independently given it with the same probability
(logit P(correct) = μ_y + u_patient + e_image, μ = 0 for positives and 1 for negatives, u, e ~ N(0, 1)).
``--arm-patient-sd`` adds a patient-by-arm effect (each arm its own N(0, sd²) shift per patient): still no
difference between the arms on average, and still exchangeable within a patient, but no longer image by image.

It prints the share of data sets where each test rejects at the nominal 5 %:

- the paired sign-flip (arm-swap) randomisation test over patients (``sign_flip_test`` on the per-image
  contributions to balanced accuracy), the primary test;
- the old image-level stratified percentile bootstrap p (``intervals.paired_bootstrap_difference``);
- the cluster bootstrap BCa 95 % interval of the difference excluding 0 (``cluster_bootstrap_difference``).

With the default 1000 data sets the Monte-Carlo sd of a rate near 0.05 is 0.007. Example::

    python benchmarks/rejection_rate.py                        # a few minutes on 2 cores
    python benchmarks/rejection_rate.py --n-sims 4000 --n-resamples 2000 --arm-patient-sd 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medsynth.stats.classification import _balanced_accuracy
from medsynth.stats.clustered import cluster_bootstrap_difference, linear_contributions, sign_flip_test
from medsynth.stats.intervals import paired_bootstrap_difference

# (images, positives) per patient, as the skin demo's test split
LAYOUT = [(1, 0)] * 49 + [(2, 0)] * 28 + [(2, 1)] * 7 + [(1, 1)] * 6 + [(2, 2)]


def demo_shaped_layout() -> tuple[np.ndarray, np.ndarray]:
    """``(y (127,), groups (127,))``."""
    groups = np.repeat(np.arange(len(LAYOUT)), [size for size, _ in LAYOUT])
    y = np.concatenate([[1] * pos + [0] * (size - pos) for size, pos in LAYOUT])
    return y, groups


def exchangeable_predictions(rng: np.random.Generator, y: np.ndarray, groups: np.ndarray,
                             arm_patient_sd: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two arms' predicted labels ``(N,)``, each right with the same probability given the latent difficulty."""
    n_patients = groups.max() + 1
    base = np.where(y == 1, 0.0, 1.0) + rng.normal(0, 1, n_patients)[groups] + rng.normal(0, 1, len(y))
    predictions = []
    for _ in range(2):
        logit = base + (rng.normal(0, arm_patient_sd, n_patients)[groups] if arm_patient_sd > 0 else 0.0)
        right = rng.random(len(y)) < 1.0 / (1.0 + np.exp(-logit))
        predictions.append(np.where(right, y, 1 - y))
    return predictions[0], predictions[1]


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return _balanced_accuracy(y, pred, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=1000, help="simulated data sets (default 1000)")
    parser.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples per test (default 1000)")
    parser.add_argument("--n-permutations", type=int, default=999, help="sign vectors per sign-flip test (999)")
    parser.add_argument("--arm-patient-sd", type=float, default=0.0, help="sd of a patient-by-arm effect (0)")
    parser.add_argument("--alpha", type=float, default=0.05, help="nominal level (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    y, groups = demo_shaped_layout()
    rng = np.random.default_rng(args.seed)
    rejected = np.zeros(3)
    start = time.perf_counter()
    for sim in range(args.n_sims):
        pred_a, pred_b = exchangeable_predictions(rng, y, groups, args.arm_patient_sd)
        d = linear_contributions("balanced_accuracy", y, pred_a, pred_b, 1, 2)
        rejected[0] += sign_flip_test(d, groups, args.n_permutations, seed=sim)["p_value"] <= args.alpha
        old = paired_bootstrap_difference(balanced_accuracy, y, [pred_a], [pred_b], n_resamples=args.n_resamples,
                                          seed=sim, confidence=1 - args.alpha)
        rejected[1] += old["p_value"] <= args.alpha
        new = cluster_bootstrap_difference(balanced_accuracy, y, [pred_a], [pred_b], groups,
                                           n_resamples=args.n_resamples, seed=sim, confidence=1 - args.alpha)
        rejected[2] += not new["ci_low"] <= 0 <= new["ci_high"]  # nan bounds count as no rejection
    rates = rejected / args.n_sims
    se = np.sqrt(args.alpha * (1 - args.alpha) / args.n_sims)
    print(f"{args.n_sims} data sets of {len(y)} images / {groups.max() + 1} patients / {y.sum()} positives, "
          f"arm-patient sd {args.arm_patient_sd}, {args.n_resamples} resamples, {args.n_permutations} sign vectors, "
          f"{time.perf_counter() - start:.0f} s")
    print(f"rejection rate at nominal {args.alpha:.0%} (Monte-Carlo sd at the nominal rate: {se:.4f})")
    names = ("sign-flip test over patients (primary)", "image-level percentile bootstrap p (old)",
             "cluster bootstrap BCa interval excludes 0")
    for name, rate in zip(names, rates, strict=True):
        print(f"  {name:<44} {rate:.4f}")


if __name__ == "__main__":
    main()
