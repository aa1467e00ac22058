"""GAN training on MONAI's ``Trainer`` (what MONAI lacks: labels, AMP, EMA, resumable state), its handlers, DDP."""
