"""medsynth: GAN-based synthetic data augmentation for imbalanced medical image classification."""

__version__ = "0.1.0"
