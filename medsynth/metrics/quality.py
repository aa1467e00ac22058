"""All feature-based metrics of one synthetic set against one real set, each with n, extractor and interval.

:func:`quality_metrics` is what the report runs per class and overall; the GAN bundles can call it on
features they extracted themselves. Every entry is a dict::

    {"value": 12.3, "n": {"real": 180, "synthetic": 500}, "extractor": "inception-v3-fid (...)",
     "interval": [10.9, 14.1], ...}

**Intervals** come from ``bootstrap`` seeded resamples of the images (with replacement), the metric
recomputed on each; 95% percentile intervals unless said otherwise:

* FID: both sets resampled. Repeated images shrink the fitted covariance, so at small n the bootstrap
  distribution sits well above the point estimate (a percentile interval may not even contain it). FID's
  interval is therefore ``value ± z · SE``, with SE the bootstrap standard deviation: it shows the
  sampling variability, and it is no correction of FID's small-n bias. Skipped (with a note) when both
  sets exceed ``fid_bootstrap_max_n`` images: above the feature dimension each resample costs a
  ``D × D`` eigendecomposition, seconds on a CPU.
* KID: the value is the unbiased MMD² of the *full* sets, and the interval a percentile bootstrap of that
  same statistic: both sets resampled, from kernels computed once; pairs of copies of one image are left
  out of the within-set means, so the mean of the bootstrap distribution is exactly the value (see
  :func:`~medsynth.metrics.kid.mmd2_from_kernels`). A 95% percentile interval can then miss the value
  only if more than 97.5% of the resamples fall on one side of their own mean. (The value used to be
  clean-fid's average over random subsets, a different, noisier statistic than the one resampled: it
  could land outside the interval. It is kept as ``subset_mean``.) Skipped above ``KID_BOOTSTRAP_MAX``
  images per set.
* precision, density (per synthetic image) and recall, coverage (per real image): the per-image terms are
  resampled with the k-NN balls held fixed, so the interval leaves out the balls' own variability.
* IS: the set resampled, splits recomputed (``value ± z · SE`` too: repeats lower the IS).
The real-vs-real FID is a reference, not an estimate, and has none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

from medsynth.metrics.features import Features
from medsynth.metrics.fid import frechet_distance_from_features
from medsynth.metrics.inception_score import inception_score
from medsynth.metrics.kid import kernel_inception_distance, kid_kernels, mmd2_from_kernels, mmd2_unbiased
from medsynth.metrics.prdc import manifold_terms

KID_BOOTSTRAP_MAX = 2000  # three n×n float64 kernels: 96 MB at 2000


@dataclass
class MetricSettings:
    """Knobs of an evaluation; all are written into the report."""

    bootstrap: int = 50  # resamples per interval; 0 turns intervals off
    fid_bootstrap_max_n: int = 2048  # no FID interval when both sets are larger (cost, see above)
    confidence: float = 0.95
    seed: int = 0
    kid_subsets: int = 100
    kid_max_subset_size: int = 1000
    pr_k: int = 3  # improved precision/recall (Kynkäänniemi et al.)
    prdc_k: int = 5  # density/coverage (Naeem et al.)
    is_splits: int = 10
    ms_ssim_pairs: int = 500
    memorization_percentile: float = 1.0
    grid_pairs: int = 16

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_interval(statistic: Callable[..., float], sizes: Sequence[int], settings: MetricSettings,
                       around: float | None = None, floor: float | None = None) -> list | None:
    """Bootstrap interval of ``statistic(*index_arrays)`` (one index array of resampled rows per size).

    Percentile interval; with ``around`` (the point estimate), ``around ± z · SE`` instead, its lower end
    clipped at ``floor`` (the statistic's smallest possible value: 0 for FID, 1 for IS).
    """
    if settings.bootstrap < 2:
        return None
    rng = np.random.default_rng(settings.seed)
    values = np.array([statistic(*(rng.integers(0, n, n) for n in sizes)) for _ in range(settings.bootstrap)])
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    if around is not None:
        half = float(norm.ppf(0.5 + settings.confidence / 2) * values.std(ddof=1))
        low = around - half if floor is None else max(around - half, floor)
        return [low, around + half]
    tail = 100 * (1 - settings.confidence) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def entry(value: float | None, n: dict, extractor: str | None, interval: list | None = None, **extra) -> dict:
    """One metric of the report."""
    return {"value": value, "n": n, "extractor": extractor, "interval": interval, **extra}


def quality_metrics(real: Features, synthetic: Features, extractor: str, settings: MetricSettings) -> dict:
    """FID (+ real-vs-real), KID, improved P/R, density/coverage and IS of ``synthetic`` against ``real``."""
    n = {"real": len(real.features), "synthetic": len(synthetic.features)}
    metrics = {"fid": fid_entry(real.features, synthetic.features, n, extractor, settings),
               "fid_real_vs_real": real_vs_real_fid(real.features, extractor, settings),
               "kid": kid_entry(real.features, synthetic.features, n, extractor, settings)}
    metrics.update(manifold_entries(real.features, synthetic.features, n, extractor, settings))
    if synthetic.logits is not None and real.logits is not None:
        metrics["inception_score"] = {"synthetic": is_entry(synthetic.logits, extractor, settings),
                                      "real": is_entry(real.logits, extractor, settings)}
    return metrics


def fid_entry(real: np.ndarray, fake: np.ndarray, n: dict, extractor: str, settings: MetricSettings) -> dict:
    if min(len(real), len(fake)) < 2:
        return entry(None, n, extractor, note="FID needs at least 2 images per set")
    value = frechet_distance_from_features(real, fake)
    if min(len(real), len(fake)) > settings.fid_bootstrap_max_n:
        return entry(value, n, extractor, None, note=f"no interval: both sets exceed "
                     f"fid_bootstrap_max_n = {settings.fid_bootstrap_max_n} images")
    interval = bootstrap_interval(lambda i, j: frechet_distance_from_features(real[i], fake[j]),
                                  (len(real), len(fake)), settings, around=value, floor=0.0)
    return entry(value, n, extractor, interval)


def real_vs_real_fid(real: np.ndarray, extractor: str, settings: MetricSettings) -> dict:
    """FID between two seeded random halves of the real set: the floor a perfect generator would reach
    at half the sample size (medigan's "lower bound"); above the floor at full n, as FID falls with n."""
    half = len(real) // 2
    if half < 2:
        return entry(None, {"real_halves": half}, extractor, note="needs at least 4 real images")
    order = np.random.default_rng(settings.seed).permutation(len(real))
    value = frechet_distance_from_features(real[order[:half]], real[order[half:2 * half]])
    return entry(value, {"real_halves": half}, extractor)


def kid_entry(real: np.ndarray, fake: np.ndarray, n: dict, extractor: str, settings: MetricSettings) -> dict:
    """KID: value = unbiased MMD² of the full sets; interval = percentile bootstrap of that statistic.

    clean-fid's subset average (``subset_mean``, ``std_over_subsets``, ``subset_size``, ``subsets``) is
    reported beside it for comparison; see :mod:`medsynth.metrics.kid`.
    """
    if min(len(real), len(fake)) < 2:
        return entry(None, n, extractor, note="KID needs at least 2 images per set")
    subset_mean, std, m = kernel_inception_distance(real, fake, settings.kid_subsets,
                                                    settings.kid_max_subset_size, settings.seed)
    extra = {"subset_mean": subset_mean, "std_over_subsets": std, "subset_size": m,
             "subsets": settings.kid_subsets}
    if max(len(real), len(fake)) > KID_BOOTSTRAP_MAX:
        return entry(mmd2_unbiased(real, fake), n, extractor, None,
                     note=f"no interval above {KID_BOOTSTRAP_MAX} images", **extra)
    kernels = kid_kernels(real, fake)
    value = mmd2_from_kernels(kernels, np.arange(len(real)), np.arange(len(fake)))
    interval = bootstrap_interval(lambda i, j: mmd2_from_kernels(kernels, i, j), (len(real), len(fake)),
                                  settings)
    return entry(value, n, extractor, interval, **extra)


def manifold_entries(real: np.ndarray, fake: np.ndarray, n: dict, extractor: str,
                     settings: MetricSettings) -> dict:
    """precision/recall (k = ``pr_k``, inclusive balls) and density/coverage (k = ``prdc_k``, strict)."""
    groups = [(("precision", "recall"), settings.pr_k, True),
              (("density", "coverage"), settings.prdc_k, False)]
    feasible = [g for g in groups if min(len(real), len(fake)) > g[1]]
    out = {name: entry(None, n, extractor, k=k, note=f"needs more than k = {k} images per set")
           for names, k, _ in groups if (names, k, _) not in feasible for name in names}
    specs = [(k, inclusive) for _, k, inclusive in feasible]
    terms_per_group = manifold_terms(real, fake, specs) if feasible else []
    for (names, k, _), terms in zip(feasible, terms_per_group, strict=True):
        for name in names:
            values = terms[name]
            interval = bootstrap_interval(lambda i, v=values: float(v[i].mean()), (len(values),), settings)
            out[name] = entry(float(values.mean()), n, extractor, interval, k=k)
    return out


def is_entry(logits: np.ndarray, extractor: str, settings: MetricSettings) -> dict:
    from scipy.special import softmax

    probs = softmax(logits, axis=1)
    splits = min(settings.is_splits, len(probs))
    if splits < 1:
        return entry(None, {"images": len(probs)}, extractor, note="no images")
    mean, std = inception_score(probs, splits)
    interval = bootstrap_interval(lambda i: inception_score(probs[i], splits)[0], (len(probs),), settings,
                                  around=mean, floor=1.0)
    return entry(mean, {"images": len(probs)}, extractor, interval, std_over_splits=std, splits=splits)
