"""Inception Score from probabilities: the two closed-form cases and the split rule."""

from __future__ import annotations

import numpy as np
import pytest

from medsynth.metrics.inception_score import inception_score, inception_score_from_logits


def test_uniform_predictions_score_one():
    mean, std = inception_score(np.full((100, 7), 1 / 7), splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 5, 10])
def test_one_hot_predictions_spread_evenly_score_the_class_count(classes):
    labels = np.arange(10 * classes * 3) % classes  # every split of N/10 rows holds each class 3 times
    mean, std = inception_score(np.eye(classes)[labels], splits=10)
    assert mean == pytest.approx(classes) and std == pytest.approx(0.0, abs=1e-9)


def test_one_class_only_scores_one():
    assert inception_score(np.eye(4)[np.zeros(50, dtype=int)], splits=5)[0] == pytest.approx(1.0)


def test_splits_are_consecutive_chunks():
    # first half all class 0, second half all class 1: with 2 splits each split is one class (IS 1);
    # with 1 split the marginal is (1/2, 1/2) and IS = 2
    probs = np.eye(2)[np.repeat([0, 1], 20)]
    assert inception_score(probs, splits=2)[0] == pytest.approx(1.0)
    assert inception_score(probs, splits=1)[0] == pytest.approx(2.0)


def test_logits_go_through_softmax():
    logits = np.eye(4)[np.arange(40) % 4] * 50.0  # softmax of these is one-hot to 1e-21
    assert inception_score_from_logits(logits, splits=10)[0] == pytest.approx(4.0, rel=1e-9)


def test_rejects_non_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.ones((20, 3)), splits=2)
    with pytest.raises(ValueError, match="N >= splits"):
        inception_score(np.full((5, 3), 1 / 3), splits=10)
