"""GAN networks, one family per file, referenced from bundle YAML by ``_target_``.

- :mod:`medsynth.networks.dcgan`: ``Generator`` and ``Discriminator`` (DCGAN, cDCGAN by label embedding
  and projection/concatenation, ACGAN by the discriminator's ``aux_classifier``), ``dcgan_init``.
- :mod:`medsynth.networks.wgan`: ``Critic`` (a discriminator that refuses batch norm) and
  ``ResidualGenerator`` (the thesis' WGAN-GP "Architecture 2").
"""
