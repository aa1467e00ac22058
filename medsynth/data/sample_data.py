"""Real medical sample files that ship inside PyPI packages, resolved in place; nothing is downloaded.

* :func:`pydicom_file` finds pydicom's own test files and those of ``pydicom-data`` (the ``data_store``
  package, through pydicom's ``external_sources`` entry point) with ``download=False``.
* :func:`nibabel_file` finds files under ``nibabel/tests/data``.

Both raise ``FileNotFoundError`` saying which package to install when a file is absent (tests turn that
into a skip). Licences differ per file (see ``datasets.md``): load them at run time, never copy their
pixels into this repository.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

# Files the tests and demos use; all in pydicom-data 1.0.0 except CT_small.dcm (in pydicom itself).
CT_ABDOMEN = "explicit_VR-UN.dcm"  # TCIA Pancreas-CT, contrast CT with liver, 512x512, J2K lossless
XRAY_LEG = "RG3_UNCR.dcm"  # CR lower leg, MONOCHROME1, 10-bit
XRAY_CHEST = "RG1_UNCR.dcm"  # CR chest PA, MONOCHROME1, 15-bit


def pydicom_file(name: str) -> Path:
    """Path of pydicom test file ``name`` (from pydicom or pydicom-data), never downloading it.

    Raises:
        FileNotFoundError: when neither pydicom nor pydicom-data holds ``name``.
    """
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    if found is None:
        raise FileNotFoundError(f"DICOM sample {name!r} is not installed; `pip install pydicom-data==1.0.0` "
                                "provides it (medsynth never downloads it)")
    return Path(found)


def nibabel_file(name: str) -> Path:
    """Path of ``nibabel/tests/data/<name>`` in the installed nibabel wheel.

    Raises:
        FileNotFoundError: when the installed nibabel lacks that file.
    """
    path = Path(str(importlib.resources.files("nibabel") / "tests" / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"nibabel sample {name!r} is not in the installed nibabel ({path.parent})")
    return path
