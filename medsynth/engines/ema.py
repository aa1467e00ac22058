"""Generator EMA with a warm-up: an exponential moving average that is useful from the first epochs on.

torch's ``get_ema_multi_avg_fn(decay)`` starts from the initial weights and keeps ``decay**t`` of them after
``t`` updates: at ``decay = 0.995`` a 270-step run still carries 26 % of the random initialisation, and with
batch norm in the generator the averaged running statistics no longer match the averaged weights. On the cDCGAN
demo that gave flat grey samples from the EMA while the raw generator already drew lesions. The usual cure
(TensorFlow's ``ExponentialMovingAverage(num_updates=...)``) ramps the decay in::

    decay_t = min(decay, (1 + t) / (warmup + t))        t = updates so far

so early on the EMA follows the generator closely and it settles at ``decay`` after a few hundred updates
(``warmup = 10``: 0.55 at t = 10, 0.9 at t = 80, 0.99 at t = 890). With ``use_buffers=True`` batch-norm running
statistics are averaged the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

_Tensors = list[Tensor] | tuple[Tensor, ...]  # what AveragedModel hands a multi_avg_fn


def warmup_decay(decay: float, updates: int, warmup: int = 10) -> float:
    """``min(decay, (1 + updates) / (warmup + updates))`` (see the module docstring)."""
    return min(decay, (1 + updates) / (warmup + updates))


def ema_multi_avg_fn(decay: float = 0.999, warmup: int = 10) -> Callable[[_Tensors, _Tensors, Tensor | int], None]:
    """``multi_avg_fn`` for ``AveragedModel``: ``ema <- d_t * ema + (1 - d_t) * current``, ``d_t`` warmed up.

    ``warmup = 0`` gives torch's constant-decay EMA.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")

    @torch.no_grad()
    def update(ema: _Tensors, current: _Tensors, num_averaged: Tensor | int) -> None:
        d = warmup_decay(decay, int(num_averaged), warmup) if warmup else decay
        if torch.is_floating_point(ema[0]) or torch.is_complex(ema[0]):
            torch._foreach_lerp_(ema, current, 1.0 - d)
        else:  # integer buffers (batch norm's num_batches_tracked): follow the model
            for e, c in zip(ema, current, strict=True):
                e.copy_(c)

    return update


def generator_ema(network: nn.Module, decay: float = 0.999, warmup: int = 10,
                  use_buffers: bool = True) -> AveragedModel:
    """``AveragedModel`` of ``network`` with :func:`ema_multi_avg_fn` (batch-norm buffers averaged too)."""
    return AveragedModel(network, multi_avg_fn=ema_multi_avg_fn(decay, warmup), use_buffers=use_buffers)
