"""Data: demo phantoms, readers, datalists, splits, ROI extraction, transform presets, datasets."""
