"""Warmed-up generator EMA: the decay schedule, and the average it produces, computed by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medsynth.engines.ema import ema_multi_avg_fn, generator_ema, warmup_decay


def test_decay_ramps_in_and_caps():
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)       # (1 + 0) / (10 + 0)
    assert warmup_decay(0.999, 80) == pytest.approx(0.9)      # 81 / 90
    assert warmup_decay(0.995, 10_000) == 0.995


def test_ema_follows_the_hand_computed_average():
    """Weights 1, 2, 3, 4 in turn: EMA = copy of 1, then lerps with d_1 = 2/11, d_2 = 3/12, d_3 = 4/13."""
    net = nn.Linear(1, 1, bias=False)
    ema = generator_ema(net, decay=0.99, warmup=10)
    expected = None
    for t, w in enumerate([1.0, 2.0, 3.0, 4.0]):
        with torch.no_grad():
            net.weight.fill_(w)
        ema.update_parameters(net)
        d = (1 + t) / (10 + t)
        expected = w if expected is None else d * expected + (1 - d) * w
    assert ema.module.weight.item() == pytest.approx(expected)
    assert expected == pytest.approx(3.6014, abs=1e-4)  # 1 -> 1.8182 -> 2.7045 -> 3.6014


def test_without_warmup_it_is_torch_constant_decay():
    net = nn.Linear(1, 1, bias=False)
    ema = generator_ema(net, decay=0.5, warmup=0)
    for w in (0.0, 4.0):
        with torch.no_grad():
            net.weight.fill_(w)
        ema.update_parameters(net)
    assert ema.module.weight.item() == pytest.approx(2.0)


def test_batch_norm_buffers_are_averaged_and_counters_follow():
    net = nn.BatchNorm1d(1)
    ema = generator_ema(net, decay=0.9, warmup=0)
    ema.update_parameters(net)
    net.running_mean.fill_(1.0)
    net.num_batches_tracked.fill_(7)
    ema.update_parameters(net)
    assert ema.module.running_mean.item() == pytest.approx(0.1)
    assert int(ema.module.num_batches_tracked) == 7


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        ema_multi_avg_fn(1.5)
    with pytest.raises(ValueError, match="warmup"):
        ema_multi_avg_fn(0.9, warmup=-1)
