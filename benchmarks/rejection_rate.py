"""Rejection rates under H0, and coverage under an alternative, of the paired comparisons of balanced accuracy on
data shaped like the demo test split.

Each simulated data set has the skin demo's test split layout (127 images from 91 patients, 15 positives: 49
patients with one negative image, 28 with two negatives, 7 with one of each, 6 with one positive and 1 with two
positives). Every image has a latent difficulty, a patient effect plus an image effect,
logit P(correct) = μ_y + u_patient + e_image (μ = 0 for positives and 1 for negatives, u, e ~ N(0, 1)), and the two
arms' correct/incorrect calls are drawn independently given their probabilities.

**Null** (two *exchangeable* classifiers): both arms have that probability. ``--arm-patient-sd`` adds a
patient-by-arm effect (each arm its own N(0, sd²) shift per patient): still no difference between the arms on
average, and still exchangeable within a patient, but no longer image by image. It prints the share of data sets
where each procedure rejects at the nominal α:

- the paired sign-flip (arm-swap) randomisation test over patients (``sign_flip_test`` on the per-image
  contributions to balanced accuracy), the primary test;
- its inversion, the sign-flip interval (``sign_flip_interval``), excluding 0: the same decision by construction;
- the old image-level stratified percentile bootstrap p (``intervals.paired_bootstrap_difference``);
- the cluster bootstrap BCa interval of the difference excluding 0 (``cluster_bootstrap_difference``).

**Alternative**: arm B is better: its logit is arm A's plus β_y + v_patient (``--advantage-positive`` β_1,
``--advantage-negative`` β_0, v ~ N(0, ``--advantage-patient-sd``²): the advantage differs between patients). The
true Δ balanced accuracy is linear in the calls, so its expectation is exact: Σ_i w_i (p_B,i - p_A,i) with w the
balanced-accuracy weights. Two targets are scored: the **population** Δ (the expectation over patients and images,
½ Σ_y (E expit(N(μ_y + β_y, 2 + τ²)) - E expit(N(μ_y, 2))), Gauss–Hermite quadrature to 1e-12), the quantity a
study of new patients estimates; and the **conditional** Δ of each data set (given its patients' and images'
latent effects, Σ_i w_i (p_B,i - p_A,i)). It prints the share of data sets whose 1 - α interval covers each target,
for the sign-flip inversion interval and the BCa cluster bootstrap interval, and their mean widths.

With the default 1000 data sets the Monte-Carlo sd of a rate near 0.05 (a coverage near 0.95) is 0.007. Example::

    python benchmarks/rejection_rate.py                        # about 3.5 minutes on 2 cores
    python benchmarks/rejection_rate.py --n-sims 4000 --n-resamples 2000 --arm-patient-sd 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.special import expit

from medsynth.stats.classification import _balanced_accuracy
from medsynth.stats.clustered import (
    cluster_bootstrap_difference,
    linear_contributions,
    linear_weights,
    sign_flip_interval,
    sign_flip_test,
)
from medsynth.stats.intervals import paired_bootstrap_difference

# (images, positives) per patient, as the skin demo's test split
LAYOUT = [(1, 0)] * 49 + [(2, 0)] * 28 + [(2, 1)] * 7 + [(1, 1)] * 6 + [(2, 2)]
MU = (1.0, 0.0)  # logit P(correct) of negatives, positives before the patient and image effects


def demo_shaped_layout() -> tuple[np.ndarray, np.ndarray]:
    """``(y (127,), groups (127,))``."""
    groups = np.repeat(np.arange(len(LAYOUT)), [size for size, _ in LAYOUT])
    y = np.concatenate([[1] * pos + [0] * (size - pos) for size, pos in LAYOUT])
    return y, groups


def _difficulty(rng: np.random.Generator, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The common logit μ_y + u_patient + e_image ``(N,)``."""
    return np.where(y == 1, MU[1], MU[0]) + rng.normal(0, 1, groups.max() + 1)[groups] + rng.normal(0, 1, len(y))


def _calls(rng: np.random.Generator, y: np.ndarray, logit: np.ndarray) -> np.ndarray:
    """Binary predicted labels, right with probability expit(logit), independently per image."""
    return np.where(rng.random(len(y)) < expit(logit), y, 1 - y)


def exchangeable_predictions(rng: np.random.Generator, y: np.ndarray, groups: np.ndarray,
                             arm_patient_sd: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two arms' predicted labels ``(N,)``, each right with the same probability given the latent difficulty."""
    n_patients = groups.max() + 1
    base = _difficulty(rng, y, groups)
    predictions = []
    for _ in range(2):
        logit = base + (rng.normal(0, arm_patient_sd, n_patients)[groups] if arm_patient_sd > 0 else 0.0)
        predictions.append(_calls(rng, y, logit))
    return predictions[0], predictions[1]


def better_predictions(rng: np.random.Generator, y: np.ndarray, groups: np.ndarray, advantage: tuple[float, float],
                       advantage_patient_sd: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``(pred_a, pred_b, conditional Δ)``: arm B's logit is arm A's plus β_y + v_patient; the conditional Δ is
    the expected Δ balanced accuracy given the latent effects, Σ_i w_i (p_B,i - p_A,i)."""
    base = _difficulty(rng, y, groups)
    shift = np.where(y == 1, advantage[1], advantage[0]) + rng.normal(0, advantage_patient_sd, groups.max() + 1)[groups]
    w = linear_weights("balanced_accuracy", y, 1, 2)
    truth = float(np.sum(w * (expit(base + shift) - expit(base))))
    return _calls(rng, y, base), _calls(rng, y, base + shift), truth


def _mean_expit(mean: float, var: float, nodes: int = 120) -> float:
    """E expit(X), X ~ N(mean, var), by Gauss–Hermite quadrature."""
    x, weight = np.polynomial.hermite_e.hermegauss(nodes)
    return float(np.sum(weight * expit(mean + np.sqrt(var) * x)) / np.sqrt(2 * np.pi))


def population_difference(advantage: tuple[float, float], advantage_patient_sd: float) -> float:
    """The population Δ balanced accuracy of :func:`better_predictions`: ½ Σ_y (E p_B - E p_A) over classes y."""
    return 0.5 * sum(_mean_expit(MU[c] + advantage[c], 2.0 + advantage_patient_sd ** 2) - _mean_expit(MU[c], 2.0)
                     for c in (0, 1))


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return _balanced_accuracy(y, pred, 2)


def _bca(y: np.ndarray, groups: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, args: argparse.Namespace,
         seed: int) -> tuple[float, float]:
    out = cluster_bootstrap_difference(balanced_accuracy, y, [pred_a], [pred_b], groups, n_resamples=args.n_resamples,
                                       seed=seed, confidence=1 - args.alpha)
    return out["ci_low"], out["ci_high"]


def null_rates(args: argparse.Namespace, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rejection rates of the four procedures under H0."""
    rng, w = np.random.default_rng(args.seed), linear_weights("balanced_accuracy", y, 1, 2)
    rejected = np.zeros(4)
    for sim in range(args.n_sims):
        pred_a, pred_b = exchangeable_predictions(rng, y, groups, args.arm_patient_sd)
        d = linear_contributions("balanced_accuracy", y, pred_a, pred_b, 1, 2)
        rejected[0] += sign_flip_test(d, groups, args.n_permutations, seed=sim)["p_value"] <= args.alpha
        low, high = sign_flip_interval(d, w, groups, args.n_permutations, seed=sim, confidence=1 - args.alpha)
        rejected[1] += not low <= 0 <= high
        old = paired_bootstrap_difference(balanced_accuracy, y, [pred_a], [pred_b], n_resamples=args.n_resamples,
                                          seed=sim, confidence=1 - args.alpha)
        rejected[2] += old["p_value"] <= args.alpha
        low, high = _bca(y, groups, pred_a, pred_b, args, sim)
        rejected[3] += not low <= 0 <= high  # nan bounds count as no rejection
    return rejected / args.n_sims


def alternative_coverage(args: argparse.Namespace, y: np.ndarray, groups: np.ndarray,
                         target: float) -> dict[str, np.ndarray]:
    """``{"sign-flip", "BCa"}: (coverage of the population Δ, of the conditional Δ, mean width, mean Δ̂ - target)``."""
    rng, w = np.random.default_rng(args.seed + 1), linear_weights("balanced_accuracy", y, 1, 2)
    advantage = (args.advantage_negative, args.advantage_positive)
    totals = {"sign-flip": np.zeros(3), "BCa": np.zeros(3)}
    bias = 0.0
    for sim in range(args.n_sims):
        pred_a, pred_b, conditional = better_predictions(rng, y, groups, advantage, args.advantage_patient_sd)
        d = linear_contributions("balanced_accuracy", y, pred_a, pred_b, 1, 2)
        bias += d.sum() - target
        intervals = {"sign-flip": sign_flip_interval(d, w, groups, args.n_permutations, seed=sim,
                                                     confidence=1 - args.alpha),
                     "BCa": _bca(y, groups, pred_a, pred_b, args, sim)}
        for name, (low, high) in intervals.items():
            totals[name] += (low <= target <= high, low <= conditional <= high, high - low)
    return {name: np.append(total / args.n_sims, bias / args.n_sims) for name, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=1000, help="simulated data sets per scenario (default 1000)")
    parser.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples per test (default 1000)")
    parser.add_argument("--n-permutations", type=int, default=999, help="sign vectors per sign-flip test (999)")
    parser.add_argument("--arm-patient-sd", type=float, default=0.0, help="null: sd of a patient-by-arm effect (0)")
    parser.add_argument("--advantage-positive", type=float, default=1.0,
                        help="alternative: arm B's logit advantage on positives (1.0)")
    parser.add_argument("--advantage-negative", type=float, default=0.25,
                        help="alternative: arm B's logit advantage on negatives (0.25)")
    parser.add_argument("--advantage-patient-sd", type=float, default=0.5,
                        help="alternative: sd of the advantage between patients (0.5)")
    parser.add_argument("--alpha", type=float, default=0.05, help="nominal level (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    y, groups = demo_shaped_layout()
    print(f"{args.n_sims} data sets per scenario of {len(y)} images / {groups.max() + 1} patients / {y.sum()} "
          f"positives, {args.n_resamples} resamples, {args.n_permutations} sign vectors")
    start = time.perf_counter()
    rates = null_rates(args, y, groups)
    se = np.sqrt(args.alpha * (1 - args.alpha) / args.n_sims)
    print(f"\nnull (exchangeable arms, arm-patient sd {args.arm_patient_sd}), {time.perf_counter() - start:.0f} s")
    print(f"rejection rate at nominal {args.alpha:.0%} (Monte-Carlo sd at the nominal rate: {se:.4f})")
    names = ("sign-flip test over patients (primary)", "sign-flip inversion interval excludes 0",
             "image-level percentile bootstrap p (old)", "cluster bootstrap BCa interval excludes 0")
    for name, rate in zip(names, rates, strict=True):
        print(f"  {name:<44} {rate:.4f}")

    start = time.perf_counter()
    target = population_difference((args.advantage_negative, args.advantage_positive), args.advantage_patient_sd)
    coverage = alternative_coverage(args, y, groups, target)
    print(f"\nalternative (arm B's logit + {args.advantage_positive} on positives, + {args.advantage_negative} on "
          f"negatives, patient sd {args.advantage_patient_sd}; population Δ balanced accuracy {target:.4f}), "
          f"{time.perf_counter() - start:.0f} s")
    print(f"coverage at nominal {1 - args.alpha:.0%} (Monte-Carlo sd at the nominal rate: {se:.4f})")
    print(f"  {'interval':<44} {'population Δ':>12} {'conditional Δ':>13} {'mean width':>10}")
    labels = {"sign-flip": "sign-flip inversion interval (primary)", "BCa": "cluster bootstrap BCa interval"}
    for name, (population, conditional, width, _) in coverage.items():
        print(f"  {labels[name]:<44} {population:>12.4f} {conditional:>13.4f} {width:>10.4f}")
    print(f"  (mean Δ̂ - population Δ: {coverage['BCa'][3]:+.4f})")


if __name__ == "__main__":
    main()
