"""medsynth.fileio: atomic writes leave the complete file or nothing (and no temporary file), JSON, sha256."""

from __future__ import annotations

import json
import os

import pytest

from medsynth.fileio import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
    sha256_file,
)


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_the_content_and_creates_the_folder(tmp_path):
    text = atomic_write_text(tmp_path / "sub" / "a.md", "line — one\nline two\n")
    assert text.read_text(encoding="utf-8") == "line — one\nline two\n"
    data = atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01\xff")
    assert data.read_bytes() == b"\x00\x01\xff"
    assert _listing(tmp_path) == ["b.bin", "sub"] and _listing(tmp_path / "sub") == ["a.md"]


def test_json_indent_two_and_trailing_newline_by_default(tmp_path):
    path = atomic_write_json(tmp_path / "x.json", {"b": [1, 2], "a": None})
    assert path.read_text() == json.dumps({"b": [1, 2], "a": None}, indent=2) + "\n"
    atomic_write_json(path, {"b": 1, "a": 2}, indent=1, sort_keys=True)
    assert path.read_text() == '{\n "a": 2,\n "b": 1\n}\n'
    assert read_json(path) == {"a": 2, "b": 1}


def test_a_failing_callback_leaves_no_temporary_file_and_the_old_file_untouched(tmp_path):
    target = atomic_write_text(tmp_path / "keep.txt", "old")

    def fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["keep.txt"]


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    def interrupt(tmp: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.txt", interrupt)
    assert _listing(tmp_path) == []


def test_unserialisable_json_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"a": object()})
    assert _listing(tmp_path) == []


def test_callback_gets_a_path_with_the_suffix_in_the_target_folder(tmp_path):
    seen = []

    def write(tmp: str) -> None:
        seen.append(tmp)
        with open(tmp, "wb") as f:
            f.write(b"x")

    atomic_write(tmp_path / "roi.nii.gz", write, suffix=".tmp.nii.gz")
    assert os.path.dirname(seen[0]) == str(tmp_path) and seen[0].endswith(".tmp.nii.gz")
    assert _listing(tmp_path) == ["roi.nii.gz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_file_mode_is_that_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = atomic_write_text(tmp_path / "atomic.txt", "x")
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_read_json_errors_are_those_of_reading_and_parsing(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError):
        read_json(tmp_path / "bad.json")


def test_sha256_of_abc(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
