"""Inception Score from class probabilities (Salimans et al. 2016).

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

computed on ``splits`` consecutive chunks (rows ``[k N / S, (k+1) N / S)``, as torch-fidelity) and reported
as mean ± standard deviation over the chunks. With pytorch-fid's Inception the probabilities are the
softmax of its 1008 "unbiased" logits (pool3 features times the final layer's weight, no bias), as in
the original TensorFlow code and torch-fidelity's ``logits_unbiased``.

IS measures confident and varied ImageNet predictions. On lesions it says little (docs/metrics.md, Caveats);
it is kept for comparison with published numbers, and any classifier's probabilities can be used.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax, xlogy


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS of class probabilities ``probs (N, C)`` (rows sum to 1); returns ``(mean, std)`` over splits.

    Uniform predictions give 1; one-hot predictions spread evenly over C classes give C.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) < splits or splits < 1:
        raise ValueError(f"need (N, C) probabilities with N >= splits = {splits}, got shape {probs.shape}")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4) or (probs < 0).any():
        raise ValueError("probs must be non-negative and sum to 1 over classes (pass softmax outputs)")
    n = len(probs)
    scores = []
    for k in range(splits):
        part = probs[k * n // splits:(k + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = xlogy(part, part) - xlogy(part, marginal)  # 0 log 0 = 0
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_from_logits(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """:func:`inception_score` of ``softmax(logits (N, C))``."""
    return inception_score(softmax(np.asarray(logits, np.float64), axis=1), splits)
