"""medsynth: GAN-based synthetic data augmentation for imbalanced medical image classification.

Packages by job, in layers (:data:`LAYERS`, bottom to top). A module may import from its own package and
from packages of a lower layer, never from a higher layer nor from another package of its own layer; this
is checked on every ``import`` statement, function-level ones included, by ``tests/test_layering.py``::

    0  medsynth (this file), medsynth.errors, medsynth.fileio   version, errors, atomic writes / JSON / hashing
       medsynth.progress    the one look of every progress bar (tqdm, shown on a terminal only)
       medsynth.bundle_templates   the GAN bundles' shared body (YAML) and the tool that renders it
    1  medsynth.demo        procedural phantoms and the demo-set writer
       medsynth.networks    GAN generators/discriminators and classifier networks
       medsynth.losses      adversarial losses, gradient penalty
       medsynth.stats       classification statistics: intervals, reports, tables, plots
    2  medsynth.data        readers, datalists, splits, ROIs, transforms, datasets (builds on demo)
    3  medsynth.metrics     synthetic-image metrics: FID, KID, IS, PRDC, diversity, memorization
       medsynth.export      synthetic sets from a trained generator: files, latents, manifest, grid
    4  medsynth.engines     GAN trainer, checkpoints, sample-grid and FID handlers
    5  medsynth.classify    the classifier stage: arms, experiment spec and runner, training, scoring,
                            inference, scikit-learn baselines
    6  medsynth.cli         the ``medsynth`` command

Importing a package imports nothing of a higher layer, so ``import medsynth.stats`` loads no torch and
``import medsynth.demo`` no MONAI. See ``docs/architecture.md``.
"""

__version__ = "0.1.0"

LAYERS: dict[str, int] = {
    "medsynth": 0,
    "medsynth.errors": 0,
    "medsynth.fileio": 0,
    "medsynth.progress": 0,
    "medsynth.bundle_templates": 0,
    "medsynth.demo": 1,
    "medsynth.networks": 1,
    "medsynth.losses": 1,
    "medsynth.stats": 1,
    "medsynth.data": 2,
    "medsynth.metrics": 3,
    "medsynth.export": 3,
    "medsynth.engines": 4,
    "medsynth.classify": 5,
    "medsynth.cli": 6,
}
