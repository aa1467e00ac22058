"""quality_metrics: every entry carries value, n, extractor and an interval; small sets degrade gracefully."""

from __future__ import annotations

import numpy as np
import pytest

from medsynth.metrics.features import Features
from medsynth.metrics.fid import frechet_distance_from_features
from medsynth.metrics.prdc import improved_precision_recall, prdc
from medsynth.metrics.quality import MetricSettings, bootstrap_interval, quality_metrics

SETTINGS = MetricSettings(bootstrap=20, kid_subsets=10)


def _features(n: int, shift: float = 0.0, seed: int = 0) -> Features:
    rng = np.random.default_rng(seed)
    return Features(rng.normal(size=(n, 8)) + shift, rng.normal(size=(n, 5)))


def test_entries_match_the_pure_functions_and_carry_n_extractor_interval():
    real, fake = _features(60, seed=0), _features(40, 0.5, seed=1)
    m = quality_metrics(real, fake, "toy", SETTINGS)
    assert m["fid"]["value"] == pytest.approx(frechet_distance_from_features(real.features, fake.features))
    five = prdc(real.features, fake.features, k=5)
    expected = {**improved_precision_recall(real.features, fake.features, k=3),
                "density": five["density"], "coverage": five["coverage"]}
    for name, value in expected.items():
        assert m[name]["value"] == pytest.approx(value)
        assert m[name]["k"] == (3 if name in ("precision", "recall") else 5)
    for name in ("fid", "kid", "precision", "recall", "density", "coverage"):
        low, high = m[name]["interval"]
        assert m[name]["n"] == {"real": 60, "synthetic": 40} and m[name]["extractor"] == "toy" and low <= high
    assert m["kid"]["subset_size"] == 40 and m["kid"]["subsets"] == 10
    assert m["fid_real_vs_real"]["n"] == {"real_halves": 30} and m["fid_real_vs_real"]["interval"] is None
    assert m["inception_score"]["synthetic"]["splits"] == 10


def test_fid_interval_is_centred_on_the_estimate():
    m = quality_metrics(_features(30), _features(30, 0.3, seed=2), "toy", SETTINGS)
    low, high = m["fid"]["interval"]
    assert low < m["fid"]["value"] < high and m["fid"]["value"] == pytest.approx((low + high) / 2)


def test_no_bootstrap_means_no_interval():
    settings = MetricSettings(bootstrap=0, kid_subsets=5)
    m = quality_metrics(_features(20), _features(20, seed=3), "toy", settings)
    assert all(m[k]["interval"] is None for k in ("fid", "kid", "precision", "density"))


def test_tiny_sets_get_notes_not_errors():
    m = quality_metrics(_features(3), _features(4, seed=1), "toy", SETTINGS)
    assert m["fid"]["value"] is not None and m["fid_real_vs_real"]["value"] is None
    assert m["precision"]["value"] is None and "k = 3" in m["precision"]["note"]
    assert m["coverage"]["value"] is None and "k = 5" in m["coverage"]["note"]
    assert m["inception_score"]["synthetic"]["splits"] == 4


def test_no_logits_no_inception_score():
    real, fake = _features(20), _features(20, seed=1)
    m = quality_metrics(Features(real.features, None), Features(fake.features, None), "toy", SETTINGS)
    assert "inception_score" not in m


def test_bootstrap_percentile_interval_of_a_mean():
    values = np.random.default_rng(0).normal(size=400)
    low, high = bootstrap_interval(lambda i: values[i].mean(), (400,), MetricSettings(bootstrap=400))
    half = 1.96 * values.std(ddof=1) / np.sqrt(400)  # normal theory for the mean
    assert low == pytest.approx(values.mean() - half, abs=0.3 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.3 * half)


def test_costly_intervals_are_skipped_with_a_note(monkeypatch):
    from medsynth.metrics import quality

    monkeypatch.setattr(quality, "KID_BOOTSTRAP_MAX", 10)
    settings = MetricSettings(bootstrap=5, kid_subsets=3, fid_bootstrap_max_n=10)
    m = quality_metrics(_features(20), _features(15, seed=4), "toy", settings)
    assert m["fid"]["interval"] is None and "fid_bootstrap_max_n = 10" in m["fid"]["note"]
    assert m["kid"]["interval"] is None and "above 10 images" in m["kid"]["note"]
    assert m["precision"]["interval"] is not None


def test_se_interval_is_clipped_at_the_statistics_floor():
    """FID >= 0 and IS >= 1: a value ± z·SE interval must not reach below what the statistic can take."""
    settings = MetricSettings(bootstrap=20, seed=0)
    noisy = np.random.default_rng(1).normal(size=50)
    low, high = bootstrap_interval(lambda i: float(noisy[i].mean() * 10), (50,), settings, around=0.1, floor=0.0)
    assert low == 0.0 and high > 0.1
