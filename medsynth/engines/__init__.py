"""Trainers MONAI lacks (conditional GAN, CycleGAN, DANN) and their handlers."""
