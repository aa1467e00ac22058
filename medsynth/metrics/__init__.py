"""Synthetic-image metrics: FID, KID, IS, precision/recall, density/coverage, diversity, memorization.

Pure math on feature arrays (``frechet_distance``, ``kernel_inception_distance``, ``prdc`` …) stays apart
from feature extraction (``extract_features`` with an injectable extractor); nothing downloads, at import
or ever, except ``download_fid_weights``. ``evaluate_synthetic`` runs everything and writes the report.
Names load lazily, so ``import medsynth.metrics`` (and the CLI's ``--help``) stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "feature_statistics": "fid", "frechet_distance": "fid", "frechet_distance_from_features": "fid",
    "kernel_inception_distance": "kid", "mmd2_unbiased": "kid", "polynomial_kernel": "kid",
    "prdc": "prdc", "improved_precision_recall": "prdc", "manifold_indicators": "prdc",
    "inception_score": "inception_score", "inception_score_from_logits": "inception_score",
    "mean_pairwise_ms_ssim": "diversity", "ms_ssim_weights": "diversity",
    "memorization_audit": "memorization", "nearest_neighbours": "memorization",
    "MemorizationAudit": "memorization",
    "load_unit_image": "images", "prepare_batch": "images",
    "Features": "features", "extract_features": "features", "features_of_tensors": "features",
    "ClassifierExtractor": "features", "RandomCNNExtractor": "features",
    "fid_inception": "inception", "random_fid_inception": "inception", "resolve_fid_weights": "inception",
    "download_fid_weights": "inception", "MissingWeightsError": "inception",
    "MetricSettings": "quality", "quality_metrics": "quality",
    "evaluate_synthetic": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"medsynth.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'medsynth.metrics' has no attribute {name!r}")
