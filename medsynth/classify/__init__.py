"""The classifier stage: experiment arms trained and scored on the same real test split, in one package.

- :mod:`medsynth.classify.spec`: :class:`~medsynth.classify.spec.ExperimentSpec`, the checked settings.
- :mod:`medsynth.classify.arms`: the arms (real, classic_aug, rebalance, oversample_matched, synthetic, warm_start,
  synthetic_only, phases) as training stages, and the pick of synthetic images.
- :mod:`medsynth.classify.engine`: one stage's training with MONAI's engines (early stopping, best model,
  freeze schedule, steps per epoch), optimizers, class weights, samplers, prediction.
- :mod:`medsynth.classify.experiment`: arms x seeds x stages, the comparison of arms.
- :mod:`medsynth.classify.scoring`: threshold -> predictions -> report -> files, the one path that the
  experiment, the bundle's inference and the baselines share.
- :mod:`medsynth.classify.inference`: what the bundle's ``inference.yaml`` predicts, and the handler writing it.
- :mod:`medsynth.classify.baselines`: scikit-learn baselines on the same splits and metrics.
"""
