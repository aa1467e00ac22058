"""Data: readers, datalists, splits, ROI extraction, transform presets, datasets, and what a bundle trains on."""
