"""Errors that name the offending file and the reason, and the ``--skip-bad`` bookkeeping.

Every user-facing reader or builder raises :class:`InputError` for bad input, so the CLI can print
``<file>: <reason>`` instead of a traceback. Where a caller asked to skip bad files, the same error is
recorded in a :class:`SkipLog` and written to ``skipped.csv`` next to the outputs.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class InputError(ValueError):
    """Bad input. ``path`` is the offending file or folder, ``reason`` says what is wrong with it."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class MissingWeightsError(FileNotFoundError):
    """A weights file (FID Inception, an ImageNet backbone) is not on this machine; nothing is downloaded
    implicitly, so the message names the file, the paths tried and how to get it."""


@dataclass
class SkipLog:
    """Collects files skipped under ``--skip-bad``; ``skip=False`` re-raises instead."""

    skip: bool = False
    rows: list[tuple[str, str]] = field(default_factory=list)

    def handle(self, error: InputError) -> None:
        """Record ``error`` when skipping, otherwise raise it."""
        if not self.skip:
            raise error
        self.rows.append((error.path or "", error.reason))

    def write(self, path: str | os.PathLike) -> Path | None:
        """Write ``skipped.csv`` (columns ``file,reason``) when anything was skipped; return its path."""
        if not self.rows:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "reason"])
            writer.writerows(self.rows)
        return path


def refuse_output_inside(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Raise :class:`InputError` when ``output`` lies inside (or is) an input folder, or is an input file.

    Outputs never go into the user's data folders: medsynth never writes into input data. An input
    *file* (a CSV manifest) protects only itself, not its whole folder: a manifest often sits in a
    home or project folder that also holds the outputs.
    """
    out = Path(output).expanduser().resolve()
    for item in inputs:
        if item is None:
            continue
        src = Path(item).expanduser().resolve()
        if src.is_file():
            if out == src or src in out.parents:
                raise InputError(output, f"output path is the input file {src}; choose another folder")
        elif out == src or src in out.parents:
            raise InputError(output, f"output path lies inside the input folder {src}; choose a folder outside it")
