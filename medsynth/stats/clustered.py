"""The patient as the statistical unit: cluster bootstrap with BCa, sign-flip test, clustered AUC and McNemar.

Images of one patient are correlated, so every resample, jackknife and test here moves whole patients
(``groups (N,)``, any hashable ids). With no groups, or one image per patient, each function reduces to its
image-level counterpart in :mod:`medsynth.stats.intervals`.

Cluster bootstrap: patients are drawn with replacement within strata of equal class composition (the sorted
tuple of labels present in the patient), as many per stratum as it holds, and a resample holds every image of
every drawn patient (Davison & Hinkley 1997, on hierarchical data). With no groups or singletons it is exactly
the stratified image bootstrap (:func:`medsynth.stats.intervals.stratified_bootstrap_indices`).

BCa interval (Efron 1987; Efron & Tibshirani 1993), θ̂ the estimate, θ*_b the B bootstrap values,
θ_(i) the leave-one-patient-out jackknife values with mean θ_(·), z_q = Φ⁻¹(q):

    z0 = Φ⁻¹(P*(θ* < θ̂) + ½ P*(θ* = θ̂))                        (tie-aware bias correction)
    a  = Σ_i (θ_(·) - θ_(i))³ / (6 [Σ_i (θ_(·) - θ_(i))²]^{3/2})  (acceleration; 0 if the θ_(i) are equal)
    α1 = Φ(z0 + (z0 + z_{α/2}) / (1 - a (z0 + z_{α/2}))),  α2 likewise with z_{1-α/2}
    interval = the α1 and α2 percentiles of θ*

Sign-flip (arm-swap) randomisation test of a statistic linear in per-image contributions d_gj (image j of
patient g, summed over seeds too): under H0 the two arms are exchangeable within each patient, so swapping
them for patient g flips the sign of D_g = Σ_j d_gj; T = Σ_g D_g is compared with T* = Σ_g s_g D_g, s_g = ±1
at random, and p = (1 + #{|T*| ≥ |T|}) / (1 + R) over R random sign vectors: Fisher's (1935) paired
randomisation test, with the Monte-Carlo p of Phipson & Smyth (2010), never 0 and with P(p ≤ α) ≤ α under
H0. Balanced accuracy on labels y with K classes present, class sizes n_c, is linear:
BA_b - BA_a = Σ_i w_i (c_b,i - c_a,i), w_i = 1 / (K n_{y_i}), with c the 0/1 correct calls.

Its inversion (Hodges & Lehmann 1963; Garthwaite 1996): with W_g = Σ_j w_gj (times S over S seeds),
a_r = Σ_g s_rg D_g and b_r = Σ_g s_rg W_g for the same R sign vectors, the test of H0: Δ = δ on the shifted
contributions d_gj - δ w_gj has T(δ) = T - δ Σ W and T*_r(δ) = a_r - δ b_r, and

    p(δ) = (1 + #{r: |a_r - δ b_r| ≥ |T - δ Σ W|}) / (1 + R),    interval = {δ: p(δ) > α}

an interval around Δ̂ = T / Σ W, since |b_r| ≤ Σ W makes p nonincreasing in |δ - Δ̂| on each side.

Clustered AUC (Obuchowski 1997), clusters i = 1..I with m_i positive units X_ij and n_i negative units Y_il,
M = Σ m_i, N = Σ n_i, ψ(x, y) = 1 if x > y, ½ if x = y, 0 otherwise, θ̂ = Σ ψ(X_ij, Y_kl) / (MN):

    V10(X_ij) = Σ_kl ψ(X_ij, Y_kl) / N,   V01(Y_kl) = Σ_ij ψ(X_ij, Y_kl) / M
    V10_i = Σ_j V10(X_ij),  V01_i = Σ_l V01(Y_il)
    S10 = I / ((I-1) M) Σ_i (V10_i - m_i θ̂)²,  S01 = I / ((I-1) N) Σ_i (V01_i - n_i θ̂)²
    S11 = I / (I-1) Σ_i (V10_i - m_i θ̂)(V01_i - n_i θ̂)
    Var(θ̂) = S10/M + S01/N + 2 S11/(MN)  = I/(I-1) Σ_i ((V10_i - m_i θ̂)/M + (V01_i - n_i θ̂)/N)²  (≥ 0)

For two scores on the same images the same formula on the differences of the structural components
(V10_b - V10_a, V01_b - V01_a, θ̂_b - θ̂_a) gives Var(θ̂_b - θ̂_a). AUC intervals are on the logit scale,
expit(logit θ̂ ± z SE / (θ̂(1 - θ̂))) (see :mod:`medsynth.stats.intervals`).

Clustered McNemar (Durkalski et al. 2003), b_i (A right, B wrong) and c_i (A wrong, B right) in patient i:

    X² = (Σ_i (b_i - c_i))² / Σ_i (b_i - c_i)²  ~ χ²₁ under H0

(with single-image patients (b_i - c_i)² = b_i + c_i and X² is McNemar's (b - c)² / (b + c)).

Holm (1979) step-down adjustment of m p-values p_(1) ≤ ... ≤ p_(m): p̃_(k) = max_{j ≤ k} min(1, (m - j + 1) p_(j)).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator, Sequence

import numpy as np
from scipy import stats as sps

from medsynth.stats.intervals import (
    _as_arrays,
    _binary,
    _drop_nan,
    _logit_interval,
    _percentiles,
    _same_length,
    _z,
    delong_auc_variance,
    delong_test,
    mcnemar_test,
    newcombe_auc_interval,
    stratified_bootstrap_indices,
)

logger = logging.getLogger(__name__)

LINEAR_METRICS = ("balanced_accuracy", "minority_recall", "accuracy")
_SIGN_CHUNK = 1 << 20  # entries of the sign matrix per chunk: 8 MB of float64


# ---------------------------------------------------------------- patients

def _factorize(groups: Sequence[Hashable] | np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """``(codes (N,), G)``: each patient id replaced by 0..G-1 in order of first appearance."""
    values = groups.tolist() if isinstance(groups, np.ndarray) else list(groups)
    if len(values) != n:
        raise ValueError(f"groups must have one patient id per image: {len(values)} ids for {n} images")
    index: dict = {}
    codes = np.fromiter((index.setdefault(g, len(index)) for g in values), dtype=np.int64, count=n)
    return codes, len(index)


def _patients(groups: Sequence[Hashable] | np.ndarray | None, n: int) -> tuple[np.ndarray, int, bool]:
    """``(codes (N,), G, clustered)``; ``clustered`` is False when groups is None or every patient has one image."""
    if groups is None:
        return np.arange(n), n, False
    codes, g = _factorize(groups, n)
    return codes, g, g < n


def _by_patient(codes: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order (N,), starts (G,), sizes (G,))``: image indices sorted by patient, each patient's slice."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=g)
    return order, np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


def _rows_of(drawn: np.ndarray, order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Every image index of the patients ``drawn (k,)``, patient after patient."""
    lengths = sizes[drawn]
    offsets = np.repeat(starts[drawn] - np.cumsum(lengths) + lengths, lengths)
    return order[offsets + np.arange(len(offsets))]


def cluster_bootstrap_indices(y_true: np.ndarray, groups: Sequence[Hashable] | np.ndarray | None = None,
                              n_resamples: int = 1000, seed: int = 0) -> list[np.ndarray]:
    """``n_resamples`` index arrays, each one resample of the patients in ``groups (N,)`` with all their images.

    Patients are drawn with replacement within strata of equal class composition (strata in sorted order,
    patients in order of first appearance), so rows differ in length when patients do. With ``groups`` None
    or one image per patient this is exactly ``list(stratified_bootstrap_indices(y_true, n_resamples, seed))``.
    """
    y = np.asarray(y_true)
    n = _same_length(y)
    codes, g, clustered = _patients(groups, n)
    if not clustered:
        return list(stratified_bootstrap_indices(y, n_resamples, seed))
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    order, starts, sizes = _by_patient(codes, g)
    strata: dict[tuple, list[int]] = {}
    for p in range(g):
        key = tuple(sorted(set(y[order[starts[p]:starts[p] + sizes[p]]].tolist())))
        strata.setdefault(key, []).append(p)
    rng = np.random.default_rng(seed)
    drawn = np.empty((n_resamples, g), dtype=np.int64)
    column = 0
    for key in sorted(strata):
        members = np.asarray(strata[key], dtype=np.int64)
        drawn[:, column:column + len(members)] = members[rng.integers(0, len(members),
                                                                      size=(n_resamples, len(members)))]
        column += len(members)
    return [_rows_of(row, order, starts, sizes) for row in drawn]


def _jackknife_rows(codes: np.ndarray, g: int) -> Iterator[np.ndarray]:
    """The image indices left when patient 0, 1, ..., G-1 is left out, one at a time."""
    order, starts, sizes = _by_patient(codes, g)
    for p in range(g):
        yield np.concatenate([order[:starts[p]], order[starts[p] + sizes[p]:]])


def cluster_jackknife_indices(groups: Sequence[Hashable] | np.ndarray | None,
                              n: int | None = None) -> list[np.ndarray]:
    """Leave-one-patient-out index sets, one per patient in order of first appearance (sorted indices).

    With ``groups`` None, leave-one-image-out over ``n`` images (``n`` is then required).
    """
    if groups is None:
        if n is None:
            raise ValueError("cluster_jackknife_indices needs n (the number of images) when groups is None")
        codes, g = np.arange(n), n
    else:
        codes, g = _factorize(groups, len(groups))
    return [np.sort(row) for row in _jackknife_rows(codes, g)]


# ---------------------------------------------------------------- BCa

def _bca_parameters(estimate: float, bootstrap_values: np.ndarray,
                    jackknife_values: np.ndarray) -> tuple[float, float]:
    """``(z0, a)``: tie-aware bias correction and jackknife acceleration (nan already dropped)."""
    below, tied = np.mean(bootstrap_values < estimate), np.mean(bootstrap_values == estimate)
    z0 = float(sps.norm.ppf(below + 0.5 * tied))
    d = jackknife_values.mean() - jackknife_values if len(jackknife_values) else np.zeros(0)
    ss = float(np.sum(d * d))
    a = float(np.sum(d ** 3) / (6.0 * ss ** 1.5)) if ss > 0 else 0.0
    return z0, a


def bca_interval(estimate: float, bootstrap_values: np.ndarray, jackknife_values: np.ndarray,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Efron's bias-corrected and accelerated interval ``(low, high)`` from ``bootstrap_values (B,)``.

    ``jackknife_values (J,)`` are the leave-one-out (patient) estimates; nan values of either are dropped;
    the acceleration is 0 when fewer than two jackknife values differ. When every bootstrap value lies on
    one side of ``estimate`` the bias correction z0 is infinite and the plain percentile interval is
    returned instead (with a logged warning). ``(nan, nan)`` when the estimate is nan or no bootstrap value
    is left.
    """
    zq = _z(confidence)
    boot = np.asarray(bootstrap_values, np.float64).ravel()
    jack = np.asarray(jackknife_values, np.float64).ravel()
    boot, jack = boot[~np.isnan(boot)], jack[~np.isnan(jack)]
    if len(boot) == 0 or np.isnan(estimate):
        return float("nan"), float("nan")
    z0, a = _bca_parameters(float(estimate), boot, jack)
    if not np.isfinite(z0):
        logger.warning("BCa: all %d bootstrap values lie on one side of the estimate %.6g; percentile interval",
                       len(boot), estimate)
        return _percentiles(boot, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = [sps.norm.cdf(z0 + (z0 + z) / (1.0 - a * (z0 + z))) for z in (-zq, zq)]
    if not np.all(np.isfinite(levels)):
        logger.warning("BCa: undefined adjusted levels (z0 = %.4g, a = %.4g); percentile interval", z0, a)
        return _percentiles(boot, confidence)
    low, high = np.percentile(boot, [100.0 * levels[0], 100.0 * levels[1]])
    return float(low), float(high)


# ---------------------------------------------------------------- cluster bootstrap of statistics

def _values(statistic: Callable[..., float], y: np.ndarray, arrays: Sequence[np.ndarray],
            rows: Sequence[np.ndarray] | Iterator[np.ndarray]) -> np.ndarray:
    """``statistic(y[idx], *(a[idx] for a in arrays))`` for every index array ``idx`` of ``rows``."""
    return np.array([statistic(y[idx], *(a[idx] for a in arrays)) for idx in rows], dtype=np.float64)


def _name(statistic: Callable[..., float]) -> str:
    return getattr(statistic, "__name__", "statistic")


def cluster_bootstrap_interval(statistic: Callable[..., float], y_true: np.ndarray, *arrays: np.ndarray,
                               groups: Sequence[Hashable] | np.ndarray | None = None, n_resamples: int = 1000,
                               seed: int = 0, confidence: float = 0.95, method: str = "bca") -> tuple[float, float]:
    """Cluster bootstrap interval of ``statistic(y_true, *arrays)``; arrays share the first dim N.

    ``method`` "bca" (jackknife over patients) or "percentile". Resamples where the statistic is nan are
    dropped (with a logged warning); ``(nan, nan)`` if all are.
    """
    if method not in ("bca", "percentile"):
        raise ValueError(f"method must be 'bca' or 'percentile', got {method!r}")
    _z(confidence)
    y, arrays_ = np.asarray(y_true), [np.asarray(a) for a in arrays]
    n = _same_length(y, *arrays_)
    rows = cluster_bootstrap_indices(y, groups, n_resamples, seed)
    values = _drop_nan(_values(statistic, y, arrays_, rows), _name(statistic))
    if method == "percentile":
        return _percentiles(values, confidence)
    codes, g, _ = _patients(groups, n)
    jack = _values(statistic, y, arrays_, _jackknife_rows(codes, g))
    return bca_interval(float(statistic(y, *arrays_)), values, jack, confidence)


def cluster_bootstrap_difference(statistic: Callable[..., float], y_true: np.ndarray,
                                 arrays_a: np.ndarray | Sequence[np.ndarray],
                                 arrays_b: np.ndarray | Sequence[np.ndarray],
                                 groups: Sequence[Hashable] | np.ndarray | None = None, *, n_resamples: int = 1000,
                                 seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired cluster bootstrap of ``statistic(y, *arrays_b) - statistic(y, *arrays_a)`` with a BCa interval.

    Both arms use the same patient resamples; the jackknife leaves out one patient (one image without
    groups). Returns ``{"a", "b", "difference" (b - a, full data), "ci_low", "ci_high", "p_value" (2 min(P*(d ≤ 0),
    P*(d ≥ 0)), capped at 1), "n_resamples" (kept: difference not nan), "n_images", "n_patients", "method"}``.
    """
    _z(confidence)
    y, arrays_a, arrays_b = np.asarray(y_true), _as_arrays(arrays_a), _as_arrays(arrays_b)
    n = _same_length(y, *arrays_a, *arrays_b)
    codes, g, clustered = _patients(groups, n)
    a, b = float(statistic(y, *arrays_a)), float(statistic(y, *arrays_b))
    rows = cluster_bootstrap_indices(y, groups, n_resamples, seed)
    diffs = _values(statistic, y, arrays_b, rows) - _values(statistic, y, arrays_a, rows)
    diffs = _drop_nan(diffs, _name(statistic) + " difference")
    jack = [_values(statistic, y, arrays, _jackknife_rows(codes, g)) for arrays in (arrays_a, arrays_b)]
    low, high = bca_interval(b - a, diffs, jack[1] - jack[0], confidence)
    p = min(1.0, 2.0 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))) if len(diffs) else float("nan")
    return {"a": a, "b": b, "difference": b - a, "ci_low": low, "ci_high": high, "p_value": float(p),
            "n_resamples": int(len(diffs)), "n_images": n, "n_patients": g,
            "method": "cluster bootstrap (BCa)" if clustered else "stratified bootstrap (BCa)"}


# ---------------------------------------------------------------- sign-flip test

def _check_linear(metric: str, y: np.ndarray, k: int, *named: tuple[str, np.ndarray]) -> None:
    if metric not in LINEAR_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {LINEAR_METRICS}")
    for name, v in (("y", y), *named):
        if v.min() < 0 or v.max() >= k:
            raise ValueError(f"{name} must hold class indices in [0, {k}), got range [{v.min()}, {v.max()}]")


def _weights(metric: str, y: np.ndarray, positive: int | None, k: int) -> np.ndarray:
    """The per-image weights of a checked metric on checked integer labels ``y (N,)``."""
    if metric == "accuracy":
        return np.full(len(y), 1.0 / len(y))
    if metric == "balanced_accuracy":
        counts = np.bincount(y, minlength=k)
        return 1.0 / (np.count_nonzero(counts) * counts[y])
    if positive is None or not np.any(y == positive):
        raise ValueError(f"minority_recall needs a positive class present in y, got positive = {positive}")
    hit = y == positive
    return np.where(hit, 1.0 / hit.sum(), 0.0)


def linear_weights(metric: str, y: np.ndarray, positive: int | None, k: int) -> np.ndarray:
    """Per-image weights ``w (N,)``, ``w >= 0`` and ``Σ w = 1``, with ``metric(y, pred) = Σ_i w_i [pred_i = y_i]``.

    ``metric`` "accuracy": 1 / N; "balanced_accuracy": 1 / (K n_{y_i}) with K the number of classes present in
    ``y`` and n_c their sizes (the mean recall over present classes); "minority_recall": 1 / n_positive on
    images of class ``positive``, 0 elsewhere. :func:`linear_contributions` is ``w (c_b - c_a)`` exactly, with
    ``c`` the 0/1 correct calls; these are the weights the test-inversion interval shifts by
    (:func:`sign_flip_interval`). Labels are class indices in [0, k).
    """
    yy = np.asarray(y).astype(np.int64).ravel()
    _same_length(yy)
    _check_linear(metric, yy, k)
    return _weights(metric, yy, positive, k)


def linear_contributions(metric: str, y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                         positive: int | None, k: int) -> np.ndarray:
    """Per-image contributions ``(N,)`` whose sum is exactly ``metric(y, pred_b) - metric(y, pred_a)``.

    ``w_i (c_b,i - c_a,i)`` with ``w`` the :func:`linear_weights` and ``c`` the 0/1 correct calls: for
    "accuracy" (c_b - c_a) / N; "balanced_accuracy" (c_b - c_a) / (K n_{y_i}) with K the number of classes
    present in ``y`` and n_c their sizes (the mean recall over present classes, as
    :mod:`medsynth.stats.classification`); "minority_recall" (c_b - c_a) / n_positive on images of class
    ``positive``, 0 elsewhere. Labels and predictions are indices in [0, k).
    """
    yy = np.asarray(y).astype(np.int64).ravel()
    pa, pb = np.asarray(pred_a).astype(np.int64).ravel(), np.asarray(pred_b).astype(np.int64).ravel()
    _same_length(yy, pa, pb)
    _check_linear(metric, yy, k, ("pred_a", pa), ("pred_b", pb))
    return _weights(metric, yy, positive, k) * ((pb == yy).astype(np.float64) - (pa == yy))


def _seed_sums(differences: np.ndarray) -> tuple[np.ndarray, int]:
    """``(per-image contributions summed over seeds (N,), S)`` from ``(N,)`` or ``(S, N)``."""
    d = np.asarray(differences, np.float64)
    if d.ndim not in (1, 2):
        raise ValueError(f"differences must be (N,) or (S, N), got shape {d.shape}")
    return (d.sum(0), d.shape[0]) if d.ndim == 2 else (d, 1)


def _sign_projections(vectors: Sequence[np.ndarray], n_permutations: int, seed: int) -> list[np.ndarray]:
    """``[s_r · v for r = 1..R]`` for each ``v (G,)`` of ``vectors``: the R = ``n_permutations`` random sign
    vectors s_r in {-1, 1}^G of ``seed``, drawn in chunks of ``_SIGN_CHUNK`` entries (the same for every caller
    with the same seed and G, so the test and its inversion see one sign matrix)."""
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    g = len(vectors[0])
    rng, chunk, done = np.random.default_rng(seed), max(1, _SIGN_CHUNK // g), 0
    out = [np.empty(n_permutations) for _ in vectors]
    while done < n_permutations:
        rows = min(chunk, n_permutations - done)
        signs = rng.integers(0, 2, size=(rows, g), dtype=np.int8).astype(np.float64) * 2.0 - 1.0
        for projection, v in zip(out, vectors, strict=True):
            projection[done:done + rows] = signs @ v
        done += rows
    return out


def sign_flip_test(differences: np.ndarray, groups: Sequence[Hashable] | np.ndarray | None = None,
                   n_permutations: int = 10000, seed: int = 0) -> dict:
    """Paired arm-swap randomisation test of T = Σ differences, flipping whole patients.

    ``differences`` are per-image contributions ``(N,)``, or ``(S, N)`` over S seeds on the same images,
    to a statistic linear in them (:func:`linear_contributions`). Returns ``{"statistic": T, "p_value"
    ((1 + #{|T*| ≥ |T| - 1e-12}) / (1 + n_permutations)), "n_permutations", "n_patients", "method"}``.
    :func:`sign_flip_interval` with the same seed and ``n_permutations`` is its inversion.
    """
    per_image, _ = _seed_sums(differences)
    n = _same_length(per_image)
    codes, g, _ = _patients(groups, n)
    sums = np.bincount(codes, weights=per_image, minlength=g)
    t = float(per_image.sum())
    (projected,) = _sign_projections([sums], n_permutations, seed)
    extreme = int(np.count_nonzero(np.abs(projected) >= abs(t) - 1e-12))
    return {"statistic": t, "p_value": (1.0 + extreme) / (1.0 + n_permutations), "n_permutations": n_permutations,
            "n_patients": g, "method": "paired sign-flip (arm-swap) randomisation test over patients"}


_TIE = 1e-12  # |T*| ≥ |T| - _TIE counts as extreme, as in sign_flip_test
_BISECTION_TOL = 1e-6


def _shifted_p(deltas: np.ndarray, a: np.ndarray, b: np.ndarray, t: float, u: float,
               n_permutations: int) -> np.ndarray:
    """The sign-flip p of H0: Δ = δ for each δ of ``deltas (m,)``: T*(δ) = a - δ b, T(δ) = t - δ u."""
    dd = np.asarray(deltas, np.float64).reshape(-1, 1)
    extreme = np.count_nonzero(np.abs(a - dd * b) >= np.abs(t - dd * u) - _TIE, axis=1)
    return (1.0 + extreme) / (1.0 + n_permutations)


def _boundary(accepted: Callable[[float], bool], estimate: float, step: float, direction: float) -> float:
    """The end of the acceptance interval on one side of ``estimate`` (``direction`` ±1), to
    ``_BISECTION_TOL``, rounded outward: the last rejected δ of the bisection. inf when nothing is rejected
    within 2^100 ``step``."""
    inner, outer = estimate, estimate + direction * step
    for _ in range(100):
        if not accepted(outer):
            break
        inner, step = outer, 2.0 * step
        outer = estimate + direction * step
    else:
        return direction * float("inf")
    while abs(outer - inner) > _BISECTION_TOL:
        middle = 0.5 * (inner + outer)
        if middle in (inner, outer):  # no float between them
            break
        if accepted(middle):
            inner = middle
        else:
            outer = middle
    return float(outer)


def sign_flip_interval(differences: np.ndarray, weights: np.ndarray,
                       groups: Sequence[Hashable] | np.ndarray | None = None, n_permutations: int = 10000,
                       seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """``(low, high)``: the confidence interval of Δ = Σ_i w_i (c_b,i - c_a,i) got by inverting :func:`sign_flip_test`.

    ``differences`` are the per-image contributions ``(N,)``, or ``(S, N)`` over S seeds on the same images
    (the statistic is then their mean over seeds), ``weights (N,)`` the :func:`linear_weights` (``w >= 0``,
    ``Σ w = 1``), ``groups (N,)`` the patient ids (None: one patient per image). The interval is every δ for
    which the sign-flip test of H0: Δ = δ, applied to the shifted contributions ``d_i - δ w_i`` (summed per
    patient, and over seeds, where the shift is ``δ w_i`` per seed), has p > α = 1 - ``confidence``: the
    randomisation interval (Hodges & Lehmann 1963; Garthwaite 1996), exact under the shift model (each
    patient's summed difference is δ W_g plus a term symmetric about 0) and approximate otherwise.

    One sign matrix (``seed``, ``n_permutations``, the same as :func:`sign_flip_test`'s) serves every δ:
    with D_g the patient sums, W_g the patient weights (both summed over seeds), a_r = s_r · D and
    b_r = s_r · W, T*(δ) = a_r - δ b_r and T(δ) = T - δ Σ_g W_g, so p(δ) = (1 + #{r: |T*(δ)| ≥ |T(δ)| - 1e-12})
    / (1 + R) is a deterministic step function evaluated in O(R). Over seeds this is the test of d/S shifted by
    δ w/S scaled by S, which leaves p unchanged; the sums are kept so that p(0) is computed exactly as
    :func:`sign_flip_test` computes its p. δ is rejected when p(δ) ≤ α (to 1e-12, so that ``confidence`` 0.9
    rejects p = 0.1 although 1 - 0.9 < 0.1 in floating point). 0 lies outside the interval exactly when
    ``sign_flip_test(differences, groups, n_permutations, seed)`` gives p ≤ α (up to a rejection boundary
    within 1e-6 of 0: the bounds are found by bisection to 1e-6 and rounded outward).

    The acceptance set is an interval around the observed Δ̂ = T / Σ W, so bisection finds its ends: since
    w >= 0, |b_r| ≤ Σ W; for δ > Δ̂, |T(δ)| = (δ - Δ̂) Σ W grows with slope Σ W while |T*(δ)| changes with slope
    at most |b_r|, so |T(δ)| - |T*(δ)| is nondecreasing, each sign vector that is extreme at δ is extreme at
    every δ' in [Δ̂, δ], and p is nonincreasing in δ; likewise below Δ̂ (p(Δ̂) = 1). Where p stays above α
    however far δ goes (too few patients, or R < 1/α - 1: every sign vector with |b_r| = Σ W, all patients
    flipped alike, is extreme at every δ) the bounds are -inf and inf, with a logged warning.
    """
    per_image, s = _seed_sums(differences)
    w = np.asarray(weights, np.float64).ravel()
    n = _same_length(per_image, w)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-9:
        raise ValueError(f"weights must be finite, >= 0 and sum to 1, got sum {w.sum():.12g}, min {w.min():.3g}")
    _z(confidence)
    alpha = 1.0 - confidence
    codes, g, _ = _patients(groups, n)
    sums = np.bincount(codes, weights=per_image, minlength=g)
    wsums = s * np.bincount(codes, weights=w, minlength=g)
    t, u = float(per_image.sum()), float(s * w.sum())
    a, b = _sign_projections([sums, wsums], n_permutations, seed)
    if (1.0 + np.count_nonzero(np.abs(b) >= u * (1.0 - 1e-9))) / (1.0 + n_permutations) > alpha + 1e-12:
        logger.warning("sign_flip_interval: with %d patients and %d sign vectors no shift is rejected at %.3g; "
                       "the interval is unbounded", g, n_permutations, alpha)
        return float("-inf"), float("inf")
    estimate = t / u
    spread = float(np.sqrt(np.sum((sums - estimate * wsums) ** 2))) / u  # the sd of T*(Δ̂) / Σ W

    def accepted(delta: float) -> bool:
        return bool(_shifted_p(np.array([delta]), a, b, t, u, n_permutations)[0] > alpha + 1e-12)

    step = max(spread, 1e-4)
    return _boundary(accepted, estimate, step, -1.0), _boundary(accepted, estimate, step, 1.0)


# ---------------------------------------------------------------- clustered ROC-AUC

def _obuchowski_components(y: np.ndarray, s: np.ndarray, codes: np.ndarray,
                           g: int) -> tuple[float, np.ndarray, np.ndarray]:
    """``(θ̂, V10_i - m_i θ̂ (G,), V01_i - n_i θ̂ (G,))`` for boolean ``y``, scores ``s`` and patient codes."""
    x, z = s[y], s[~y]
    m, n = len(x), len(z)
    xs, zs = np.sort(x), np.sort(z)
    v10 = (np.searchsorted(zs, x, side="left") + np.searchsorted(zs, x, side="right")) / (2.0 * n)
    v01 = (2 * m - np.searchsorted(xs, z, side="right") - np.searchsorted(xs, z, side="left")) / (2.0 * m)
    theta = float(v10.mean())
    m_i, n_i = np.bincount(codes[y], minlength=g), np.bincount(codes[~y], minlength=g)
    d10 = np.bincount(codes[y], weights=v10, minlength=g) - m_i * theta
    d01 = np.bincount(codes[~y], weights=v01, minlength=g) - n_i * theta
    return theta, d10, d01


def _obuchowski_variance(d10: np.ndarray, d01: np.ndarray, m: int, n: int) -> float:
    """S10/M + S01/N + 2 S11/(MN) from the centred cluster sums (G,)."""
    g = len(d10)
    s10 = g / ((g - 1) * m) * np.sum(d10 * d10)
    s01 = g / ((g - 1) * n) * np.sum(d01 * d01)
    s11 = g / (g - 1) * np.sum(d10 * d01)
    return float(s10 / m + s01 / n + 2.0 * s11 / (m * n))


def _clustered_binary(y_true: np.ndarray, scores: Sequence[np.ndarray], groups) -> tuple:
    """``(y bool (N,), scores, codes, G, clustered, defined)``; ``defined`` when each class spans 2+ patients."""
    y, arrays = _binary(y_true, *scores)
    codes, g, clustered = _patients(groups, len(y))
    defined = len(np.unique(codes[y])) >= 2 and len(np.unique(codes[~y])) >= 2
    return y, arrays, codes, g, clustered, defined


def obuchowski_auc_variance(y_true: np.ndarray, scores: np.ndarray,
                            groups: Sequence[Hashable] | np.ndarray | None) -> tuple[float, float]:
    """``(AUC, variance)`` of ``scores (N,)`` against binary ``y_true (N,)`` in clusters ``groups (N,)``.

    The variance is nan when the positives or the negatives come from a single patient. With one image per
    patient (I = M + N clusters, S11 = 0, and θ̂ the mean of the V10 and of the V01) it is

        I/(I-1) [((M-1)/M) s²(V10)/M + ((N-1)/N) s²(V01)/N],

    s² DeLong's sample variances: DeLong's variance times I(M-1)/((I-1)M) when M = N, otherwise each
    term with its own factor.
    """
    y, (s,), codes, g, _, defined = _clustered_binary(y_true, [scores], groups)
    theta, d10, d01 = _obuchowski_components(y, s, codes, g)
    var = _obuchowski_variance(d10, d01, int(y.sum()), int((~y).sum())) if defined else float("nan")
    return theta, var


def obuchowski_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                    groups: Sequence[Hashable] | np.ndarray | None, confidence: float = 0.95) -> dict:
    """Paired clustered test of two score vectors ``(N,)`` on the same images (Obuchowski 1997).

    Returns ``{"auc_a", "auc_b", "difference" (b - a), "ci_low", "ci_high", "z", "p_value", "method"}`` as
    :func:`medsynth.stats.intervals.delong_test`, with the variance of the difference from the differences
    of the structural components. Zero variance: z = 0 and p = 1 when the difference is 0, else ±inf and 0.
    """
    zq = _z(confidence)
    y, (sa, sb), codes, g, _, defined = _clustered_binary(y_true, [scores_a, scores_b], groups)
    auc_a, d10_a, d01_a = _obuchowski_components(y, sa, codes, g)
    auc_b, d10_b, d01_b = _obuchowski_components(y, sb, codes, g)
    diff = auc_b - auc_a
    var = _obuchowski_variance(d10_b - d10_a, d01_b - d01_a, int(y.sum()), int((~y).sum())) if defined \
        else float("nan")
    if var > 0:
        z = diff / np.sqrt(var)
        p = 2.0 * sps.norm.sf(abs(z))
    elif var == 0:
        z, p = (0.0, 1.0) if diff == 0 else (float(np.sign(diff) * np.inf), 0.0)
    else:
        z = p = float("nan")
    half = zq * np.sqrt(var) if var >= 0 else float("nan")
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": float(diff), "ci_low": float(diff - half),
            "ci_high": float(diff + half), "z": float(z), "p_value": float(p), "method": "Obuchowski clustered"}


def auc_interval(y_true: np.ndarray, scores: np.ndarray, groups: Sequence[Hashable] | np.ndarray | None = None,
                 confidence: float = 0.95) -> dict:
    """``{"value", "ci_low", "ci_high", "method"}``: the AUC with its logit-scale interval.

    The standard error is DeLong's with no groups or one image per patient, Obuchowski's otherwise. Where the
    logit interval is undefined (an AUC of 0 or 1: perfect separation; or a class from a single patient) the
    interval is Newcombe's score-type one (:func:`~medsynth.stats.intervals.newcombe_auc_interval`, images
    treated as independent), and the method says so.
    """
    _z(confidence)
    y = np.asarray(y_true)
    _, _, clustered = _patients(groups, _same_length(y, np.asarray(scores).ravel()))
    if clustered:
        auc, var = obuchowski_auc_variance(y, scores, groups)
        method = "Obuchowski clustered, logit scale"
    else:
        auc, var = delong_auc_variance(y, scores)
        method = "DeLong, logit scale"
    low, high = _logit_interval(auc, var, confidence)
    if np.isfinite(auc) and not (np.isfinite(low) and np.isfinite(high)):
        positives = int(np.sum(y.astype(bool)))
        low, high = newcombe_auc_interval(auc, positives, len(y) - positives, confidence)
        method = "Newcombe score interval (AUC at 0 or 1, or a class of one patient)"
    return {"value": auc, "ci_low": low, "ci_high": high, "method": method}


def auc_difference_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                        groups: Sequence[Hashable] | np.ndarray | None = None, confidence: float = 0.95) -> dict:
    """Paired AUC test (b - a): :func:`delong_test` with no groups or singletons, else :func:`obuchowski_test`."""
    y = np.asarray(y_true)
    _, _, clustered = _patients(groups, _same_length(y, np.asarray(scores_a).ravel()))
    if clustered:
        return obuchowski_test(y, scores_a, scores_b, groups, confidence)
    return delong_test(y, scores_a, scores_b, confidence) | {"method": "DeLong"}


# ---------------------------------------------------------------- McNemar, Holm

def clustered_mcnemar(correct_a: np.ndarray, correct_b: np.ndarray,
                      groups: Sequence[Hashable] | np.ndarray | None = None) -> dict:
    """McNemar test of two classifiers' correct calls ``(N,)`` with patients as the unit.

    Exact McNemar (:func:`medsynth.stats.intervals.mcnemar_test`) with no groups or one image per patient,
    otherwise Durkalski et al. (2003) X² = (Σ_i (b_i - c_i))² / Σ_i (b_i - c_i)² against χ²₁ (p = 1 when the
    denominator is 0). Returns ``{"b", "c", "n", "n_patients", "p_value", "method"}``.
    """
    a, b_ = np.asarray(correct_a, bool).ravel(), np.asarray(correct_b, bool).ravel()
    n = _same_length(a, b_)
    codes, g, clustered = _patients(groups, n)
    if not clustered:
        return mcnemar_test(a, b_) | {"n_patients": g}
    b_i = np.bincount(codes, weights=a & ~b_, minlength=g)
    c_i = np.bincount(codes, weights=~a & b_, minlength=g)
    diff = b_i - c_i
    den = float(np.sum(diff * diff))
    p = float(sps.chi2.sf(float(diff.sum()) ** 2 / den, 1)) if den > 0 else 1.0
    return {"b": int(b_i.sum()), "c": int(c_i.sum()), "n": n, "n_patients": g, "p_value": p,
            "method": "clustered McNemar (Durkalski et al. 2003)"}


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, same shape as ``p_values (m,)``; monotone, capped at 1, nan kept."""
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    values = p[ok]
    m = len(values)
    order = np.argsort(values, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * values[order]))
    kept = np.empty(m)
    kept[order] = adjusted
    out[ok] = kept
    return out

