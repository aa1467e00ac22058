"""Synthetic sets from a trained generator: counts, reproducible latents, and the writer a bundle's inference runs.

:func:`synthetic_counts` says how many images per class, :class:`LatentDataset` and :func:`prepare_latent_batch`
feed MONAI's ``SupervisedEvaluator``, and :class:`SyntheticSetWriter` (its handler) writes and atomically publishes
the files, ``manifest.csv``, ``grid.png`` and a ``datalist.json`` that merges with the real one.
"""

from medsynth.export.files import encode_image, file_format, nifti_affine, reading_preset
from medsynth.export.latents import (
    LatentDataset,
    latent_vector,
    parse_ratio,
    prepare_latent_batch,
    synthetic_counts,
)
from medsynth.export.synthetic import MANIFEST_COLUMNS, SyntheticSetWriter, is_synthetic_set

__all__ = [
    "MANIFEST_COLUMNS",
    "LatentDataset",
    "SyntheticSetWriter",
    "encode_image",
    "file_format",
    "is_synthetic_set",
    "latent_vector",
    "nifti_affine",
    "parse_ratio",
    "prepare_latent_batch",
    "reading_preset",
    "synthetic_counts",
]
