"""Arm comparisons with the patient as the unit: secondary per-seed comparisons, the pooled primary endpoint,
Holm across arms, the power statement, seed aggregation; checked against scikit-learn and hand values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import average_precision_score, balanced_accuracy_score, recall_score, roc_auc_score

from medsynth.stats.classification import classification_report
from medsynth.stats.clustered import linear_contributions, linear_weights, sign_flip_interval, sign_flip_test
from medsynth.stats.comparison import (
    aggregate_seeds,
    compare_predictions,
    holm_adjust,
    pooled_comparison,
    power_statement,
)
from medsynth.stats.intervals import delong_test, exact_mcnemar
from tests.helpers import softmax, tied_scores


def _two_arms(n: int = 120, seed: int = 3):
    y, probs_a = tied_scores(n, 2, seed=seed)
    _, probs_b = tied_scores(n, 2, seed=seed + 6)
    return y, probs_a, probs_a.argmax(1), probs_b, (probs_b[:, 1] >= 0.4).astype(int)


def _patients(n: int, seed: int = 0) -> np.ndarray:
    """Patient ids with 1-3 images each, in image order."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice([1, 1, 2, 3])))
    ids = np.repeat([f"p{i:03d}" for i in range(len(sizes))], sizes)[:n]
    return ids


def test_compare_binary_arms_equals_sklearn_and_delong():
    y, probs_a, pred_a, probs_b, pred_b = _two_arms()
    out = compare_predictions(y, probs_a, pred_a, probs_b, pred_b, positive=1, n_resamples=200, n_permutations=999)
    json.dumps(out, allow_nan=False)
    right_a, right_b = pred_a == y, pred_b == y
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    assert (out["mcnemar"]["b"], out["mcnemar"]["c"]) == (b, c)
    assert out["mcnemar"]["p_value"] == pytest.approx(exact_mcnemar(b, c))
    reference = delong_test(y, probs_a[:, 1], probs_b[:, 1])
    for key in ("auc_a", "auc_b", "difference", "z", "p_value"):
        assert out["roc_auc"][key] == pytest.approx(reference[key]), key
    ba = out["balanced_accuracy"]
    assert ba["difference"] == pytest.approx(balanced_accuracy_score(y, pred_b) - balanced_accuracy_score(y, pred_a))
    assert ba["ci_low"] <= ba["difference"] <= ba["ci_high"]
    assert "sign-flip" in ba["test"] and ba["interval"] == "sign-flip test inversion"
    assert "BCa" in out["pr_auc"]["interval"]
    assert out["minority_recall"]["a"] == pytest.approx(recall_score(y, pred_a))
    assert out["pr_auc"]["b"] == pytest.approx(average_precision_score(y, probs_b[:, 1]))
    hit = y == 1
    assert out["discordance_positive"] == pytest.approx(np.mean(pred_a[hit] != pred_b[hit]))
    assert out["n_images"] == out["n_patients"] == len(y)


def test_one_image_per_patient_equals_no_patient_ids():
    y, probs_a, pred_a, probs_b, pred_b = _two_arms(90, seed=4)
    kwargs = {"positive": 1, "n_resamples": 150, "n_permutations": 499, "seed": 2}
    plain = compare_predictions(y, probs_a, pred_a, probs_b, pred_b, **kwargs)
    singletons = compare_predictions(y, probs_a, pred_a, probs_b, pred_b, groups=[f"id{i}" for i in range(len(y))],
                                     **kwargs)
    assert singletons == plain


def test_clustered_comparison_uses_patient_methods():
    y, probs_a, pred_a, probs_b, pred_b = _two_arms(120, seed=5)
    groups = _patients(len(y))
    out = compare_predictions(y, probs_a, pred_a, probs_b, pred_b, positive=1, groups=groups, n_resamples=150,
                              n_permutations=499)
    assert out["n_images"] == 120 and out["n_patients"] == len(set(groups)) < 120
    assert "Durkalski" in out["mcnemar"]["method"]
    assert "Obuchowski" in out["roc_auc"]["method"]
    assert out["balanced_accuracy"]["interval"] == "sign-flip test inversion"
    assert out["pr_auc"]["interval"].startswith("cluster bootstrap")
    # the point estimates do not depend on how the images are grouped
    plain = compare_predictions(y, probs_a, pred_a, probs_b, pred_b, positive=1, n_resamples=150, n_permutations=499)
    for key in ("balanced_accuracy", "minority_recall", "pr_auc"):
        assert out[key]["difference"] == pytest.approx(plain[key]["difference"])


def test_compare_identical_multiclass_arms():
    y, probs = tied_scores(90, 3, seed=5)
    pred = probs.argmax(1)
    out = compare_predictions(y, probs, pred, probs, pred, positive=1, n_resamples=100, n_permutations=199)
    assert out["mcnemar"]["p_value"] == 1.0
    for key in ("roc_auc", "balanced_accuracy", "minority_recall", "pr_auc"):
        assert out[key]["difference"] == 0 and out[key]["p_value"] == 1.0, key
    assert out["roc_auc"]["a"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert compare_predictions(y, probs, pred, probs, pred, positive=None, n_resamples=20,
                               n_permutations=99)["minority_recall"] is None


def _scores(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mildly informative binary probabilities for labels ``y`` and their predictions at 0.4."""
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, 4, (len(y), 2)).astype(float)
    logits[np.arange(len(y)), y] += rng.integers(0, 3, len(y))
    probs = softmax(logits)
    return probs, (probs[:, 1] >= 0.4).astype(int)


def test_pooled_comparison_averages_the_seeds():
    y = tied_scores(100, 2, seed=1)[0]
    (pa0, qa0), (pa1, qa1), (pb0, qb0), (pb1, qb1) = (_scores(y, s) for s in (10, 11, 20, 21))
    groups = _patients(len(y), seed=3)
    out = pooled_comparison(y, [(pa0, qa0), (pa1, qa1)], [(pb0, qb0), (pb1, qb1)], positive=1, groups=groups,
                            n_resamples=200, n_permutations=999)
    per_seed = [balanced_accuracy_score(y, qb0) - balanced_accuracy_score(y, qa0),
                balanced_accuracy_score(y, qb1) - balanced_accuracy_score(y, qa1)]
    assert out["per_seed"] == pytest.approx(per_seed)
    assert out["difference"] == pytest.approx(np.mean(per_seed))
    assert out["sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert out["n_seeds"] == 2 and out["n_patients"] == len(set(groups))
    assert out["ci_low"] <= out["difference"] <= out["ci_high"]
    assert 0 < out["p_value"] <= 1 and "sign-flip" in out["test"]
    # the interval inverts the test: the seeds' contributions, a patient's sign shared by all seeds
    contributions = np.stack([linear_contributions("balanced_accuracy", y, qa, qb, 1, 2)
                              for qa, qb in ((qa0, qb0), (qa1, qb1))])
    weights = linear_weights("balanced_accuracy", y, 1, 2)
    assert (out["ci_low"], out["ci_high"]) == sign_flip_interval(contributions, weights, groups, 999, seed=0)
    assert out["p_value"] == sign_flip_test(contributions, groups, 999, seed=0)["p_value"]
    assert (not out["ci_low"] <= 0 <= out["ci_high"]) == (out["p_value"] <= 0.05)
    auc = pooled_comparison(y, [(pa0, qa0), (pa1, qa1)], [(pb0, qb0), (pb1, qb1)], endpoint="roc_auc", positive=1,
                            groups=groups, n_resamples=100)
    expected = np.mean([roc_auc_score(y, pb0[:, 1]) - roc_auc_score(y, pa0[:, 1]),
                        roc_auc_score(y, pb1[:, 1]) - roc_auc_score(y, pa1[:, 1])])
    assert auc["difference"] == pytest.approx(expected)


def test_pooled_single_seed_matches_the_secondary_comparison():
    y, probs_a, pred_a, probs_b, pred_b = _two_arms(110, seed=8)
    groups = _patients(len(y), seed=1)
    kwargs = {"positive": 1, "groups": groups, "n_resamples": 200, "n_permutations": 999, "seed": 4}
    pooled = pooled_comparison(y, [(probs_a, pred_a)], [(probs_b, pred_b)], **kwargs)
    single = compare_predictions(y, probs_a, pred_a, probs_b, pred_b, **kwargs)["balanced_accuracy"]
    for key in ("difference", "ci_low", "ci_high", "p_value"):
        assert pooled[key] == pytest.approx(single[key]), key
    assert pooled["sd"] is None


def test_pooled_comparison_rejects_bad_input():
    y, probs_a, pred_a, probs_b, pred_b = _two_arms(40)
    with pytest.raises(ValueError, match="same number"):
        pooled_comparison(y, [(probs_a, pred_a)], [], positive=1)
    with pytest.raises(ValueError, match="unknown primary endpoint"):
        pooled_comparison(y, [(probs_a, pred_a)], [(probs_b, pred_b)], endpoint="accuracy", positive=1)
    with pytest.raises(ValueError, match="predictions of 39"):
        pooled_comparison(y, [(probs_a, pred_a[:-1])], [(probs_b, pred_b)], positive=1)


def test_holm_across_arms_textbook():
    # Holm (1979): sorted p 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    results = {"a": {"p_value": 0.01}, "b": {"p_value": 0.04}, "c": {"p_value": 0.03}, "d": {"p_value": 0.005},
               "e": {"p_value": None}}
    out = holm_adjust(results)
    assert [out[n]["p_holm"] for n in "abcd"] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [out[n]["significant"] for n in "abcd"] == [True, False, False, True]
    assert out["e"] == {"p_holm": None, "significant": None, "k": 4}


def test_power_statement_solves_connors_formula():
    y = np.r_[np.ones(15, int), np.zeros(112, int)]
    groups = np.r_[[f"p{i // 2}" for i in range(15)], [f"q{i}" for i in range(112)]]  # 15 positives, 8 patients
    out = power_statement(y, 1, groups, discordance=0.2)
    assert (out["positive_images"], out["positive_patients"]) == (15, 8)
    z_a, z_b = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    for n, key in ((15, "mdd_images"), (8, "mdd_patients")):
        d = out[key]
        n_needed = (z_a * np.sqrt(0.2) + z_b * np.sqrt(0.2 - d * d)) ** 2 / (d * d)  # Connor (1987)
        assert n_needed == pytest.approx(n, rel=1e-6), key
    assert out["mdd_patients"] > out["mdd_images"]
    fallback = power_statement(y, 1, None, discordance=0.0, baseline_recall=0.8)
    assert fallback["discordance"] == pytest.approx(2 * 0.8 * 0.2) and "independent" in fallback["discordance_from"]
    assert power_statement(y, None, None, 0.2) is None


def test_aggregate_seeds():
    reports = [classification_report(*tied_scores(60, 2, seed=s), ["a", "b"], n_resamples=50) for s in range(3)]
    reports[1]["metrics"]["precision/b"]["value"] = None  # an undefined value is skipped
    agg = aggregate_seeds(reports)
    values = [r["metrics"]["balanced_accuracy"]["value"] for r in reports]
    assert agg["balanced_accuracy"]["mean"] == pytest.approx(np.mean(values))
    assert agg["balanced_accuracy"]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert agg["balanced_accuracy"]["n_seeds"] == 3 and agg["balanced_accuracy"]["values"] == values
    assert agg["precision/b"]["n_seeds"] == 2
    single = aggregate_seeds(reports[:1])["mcc"]
    assert single["sd"] is None and single["mean"] == reports[0]["metrics"]["mcc"]["value"]
    json.dumps(agg, allow_nan=False)


def test_no_discordant_call_gives_no_interval_rather_than_a_zero_width_one():
    y, probs_a, pred_a, _, _ = _two_arms(60, seed=2)
    out = compare_predictions(y, probs_a, pred_a, probs_a, pred_a, positive=1, groups=_patients(60),
                              n_resamples=50, n_permutations=199)
    for key in ("balanced_accuracy", "minority_recall"):
        entry = out[key]
        assert entry["difference"] == 0 and entry["p_value"] == 1.0
        assert entry["ci_low"] is None and entry["ci_high"] is None and entry["interval"].startswith("none")
