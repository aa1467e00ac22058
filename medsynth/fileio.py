"""Atomic file writes, JSON and hashing: the one place medsynth writes a file "all or nothing".

:func:`atomic_write` is the primitive: a temporary file in the target's folder (``.<name>.<random><suffix>``),
filled by a callback, flushed and ``fsync``-ed, then ``os.replace``-d onto the target, and the folder
``fsync``-ed where the platform allows it. A reader therefore sees either the old file or the complete new
one, never a partial file; on any failure (an exception in the callback, a full disk, ``KeyboardInterrupt``)
the temporary file is removed and the error re-raised, and an existing target is left untouched.

The written file gets the permissions a plain ``open(path, "w")`` would give it (``0o666`` less the umask),
not the owner-only mode of :func:`tempfile.mkstemp`.

:func:`atomic_write_text`, :func:`atomic_write_bytes` and :func:`atomic_write_json` cover the common cases;
:func:`read_json` and :func:`sha256_file` are the matching readers. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "read_json",
           "sha256_file"]


def _current_umask() -> int:
    """The process umask (read without changing it where ``/proc`` has it, else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move the complete file onto ``path``.

    ``write`` gets the temporary file's path (a string) and writes the whole content there; it may open
    the file itself or hand the path to a library (``torch.save``, ``nib.save``, ``fig.savefig``). ``suffix``
    ends the temporary name, for writers that pick the format from it (``".tmp.nii.gz"``). The parent
    folder is created when missing. The file is ``fsync``-ed before the rename and the folder after it.
    On any failure, ``KeyboardInterrupt`` included, the temporary file is removed and the error re-raised;
    an existing ``path`` is then unchanged. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.close(fd)
        os.chmod(tmp, _FILE_MODE)
        write(tmp)
        with open(tmp, "rb+") as f:  # also flushes what a library wrote through its own handle
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`); returns ``path``."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (no newline translation); returns ``path``."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any, **json_kwargs: Any) -> Path:
    """Write ``obj`` as JSON with a trailing newline to ``path`` atomically; returns ``path``.

    ``json_kwargs`` go to :func:`json.dumps` (``indent`` defaults to 2; pass ``indent=1``, ``sort_keys``,
    ``default`` or ``allow_nan=False`` as a file's format needs). The text is built before the temporary
    file is created, so an object that cannot be serialised leaves nothing behind.
    """
    json_kwargs.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(obj, **json_kwargs) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The parsed content of the UTF-8 JSON file ``path``.

    Errors are those of reading and parsing (``OSError`` such as ``FileNotFoundError``, ``UnicodeDecodeError``
    and ``json.JSONDecodeError``, both ``ValueError``), so a caller can turn them into its own message.
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
