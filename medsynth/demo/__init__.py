"""Demo data: seeded procedural phantoms and the writer of the demo sets that stand in for the public data.

- :mod:`medsynth.demo.phantoms`: dermoscopy skin lesions and bone radiographs (numpy/scipy).
- :mod:`medsynth.demo.phantoms_ct`: an abdominal CT volume in HU with liver lesions (cyst, metastasis, hemangioma).
- :mod:`medsynth.demo.dicom_write`: small DICOM writers (a CT series, a radiograph) with seeded UIDs.
- :mod:`medsynth.demo.writer`: ``write_demo_dataset("skin" | "ct" | "xray", out)``, laid out like the public
  data sets, and ``nifti_affine``.

This package sits below :mod:`medsynth.data` (which builds datalists from these sets) and imports nothing of it.
"""
