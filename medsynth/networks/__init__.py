"""GAN networks, one family per file, referenced from bundle YAML by ``_target_``.

- :mod:`medsynth.networks.dcgan`: ``Generator`` and ``Discriminator`` (DCGAN, cDCGAN by label embedding
  and projection/concatenation, ACGAN by the discriminator's ``aux_classifier``), ``dcgan_init``.
- :mod:`medsynth.networks.wgan`: ``Critic`` (a discriminator that refuses batch norm) and
  ``ResidualGenerator`` (the thesis' WGAN-GP "Architecture 2").
- :mod:`medsynth.networks.classifiers`: ``classifier(name, ...)`` (torchvision, MONAI DenseNet121 and the two
  study CNNs ``LiverLesionCNN``, ``BoneFractureCNN``), offline pretrained loading, ``head_parameters`` and
  ``set_backbone_trainable``.
"""
