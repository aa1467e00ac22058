"""Classification statistics: intervals and tests, classification reports, their tables and plots.

- :mod:`medsynth.stats.intervals`: Wilson score and stratified bootstrap intervals, DeLong's AUROC variance,
  logit-scale interval and paired test, exact McNemar, paired bootstrap differences, mean and sd.
- :mod:`medsynth.stats.clustered`: the patient as the unit: cluster bootstrap indices, jackknife and BCa
  intervals of single metrics and paired differences, the paired sign-flip (arm-swap) randomisation test,
  the interval inverting it, and the linear per-image contributions and weights they need, Obuchowski's
  clustered AUROC variance and paired test,
  logit-scale AUROC intervals, clustered McNemar (Durkalski), Holm's adjustment.
- :mod:`medsynth.stats.calibration`: Brier score, calibration slope and intercept, reliability bins,
  sensitivity at a fixed specificity, the minimum detectable paired difference (Connor).
- :mod:`medsynth.stats.classification`: the decision threshold chosen on validation, the classification
  report with 95 % intervals (patients as the unit where they have several images), calibration.
- :mod:`medsynth.stats.comparison`: arms compared on the same test images: the pre-specified primary endpoint
  pooled over seeds with Holm's correction, secondary paired comparisons per seed, the power statement,
  aggregates over seeds.
- :mod:`medsynth.stats.tables`: predictions CSV (write and read back), metrics JSON, Markdown tables,
  TensorBoard scalars.
- :mod:`medsynth.stats.plots`: ROC, precision-recall, confusion-matrix and reliability figures as PNG.

numpy/scipy/scikit-learn (matplotlib for the plots); no torch. Names load lazily.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "wilson_interval": "intervals", "exact_mcnemar": "intervals", "mcnemar_test": "intervals",
    "delong_auc_variance": "intervals", "delong_interval": "intervals", "delong_test": "intervals",
    "stratified_bootstrap_indices": "intervals", "bootstrap_interval": "intervals",
    "paired_bootstrap_difference": "intervals", "mean_sd": "intervals",
    "THRESHOLD_RULES": "classification", "choose_threshold": "classification",
    "predict_labels": "classification", "classification_report": "classification",
    "patient_groups": "classification", "n_patients": "classification",
    "ENDPOINTS": "comparison", "compare_predictions": "comparison", "pooled_comparison": "comparison",
    "holm_adjust": "comparison", "power_statement": "comparison", "cohort": "comparison",
    "aggregate_seeds": "comparison",
    "LINEAR_METRICS": "clustered", "cluster_bootstrap_indices": "clustered",
    "cluster_jackknife_indices": "clustered", "bca_interval": "clustered",
    "cluster_bootstrap_interval": "clustered", "cluster_bootstrap_difference": "clustered",
    "linear_contributions": "clustered", "linear_weights": "clustered", "sign_flip_test": "clustered",
    "sign_flip_interval": "clustered", "obuchowski_auc_variance": "clustered",
    "obuchowski_test": "clustered", "auc_interval": "clustered", "auc_difference_test": "clustered",
    "clustered_mcnemar": "clustered", "holm": "clustered",
    "brier_score": "calibration", "calibration_slope_intercept": "calibration", "calibration_slope": "calibration",
    "calibration_intercept": "calibration", "reliability_bins": "calibration",
    "sensitivity_at_specificity": "calibration", "min_detectable_difference": "calibration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"medsynth.stats.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'medsynth.stats' has no attribute {name!r}")
