"""Data: readers, datalists, splits, CT volumes and ROI extraction, transform presets, datasets, the embedded demo set.

The demo phantoms and their writer live in :mod:`medsynth.demo` (a layer below); :mod:`medsynth.data.embedded`
builds the bundles' default datalists from them.
"""
