"""InputError, SkipLog and the never-write-into-input-data rule."""

from __future__ import annotations

import csv

import pytest

from medsynth.errors import InputError, SkipLog, refuse_output_inside


def test_input_error_names_file_and_reason():
    err = InputError("/data/a.png", "file is empty (0 bytes)")
    assert str(err) == "/data/a.png: file is empty (0 bytes)"
    assert err.path == "/data/a.png" and err.reason == "file is empty (0 bytes)"


def test_skiplog_raises_unless_skipping(tmp_path):
    with pytest.raises(InputError):
        SkipLog(skip=False).handle(InputError("x.png", "corrupt"))
    log = SkipLog(skip=True)
    assert log.write(tmp_path / "skipped.csv") is None  # nothing skipped, no file
    log.handle(InputError("x.png", "corrupt"))
    log.handle(InputError("y.dcm", "no pixel data"))
    rows = list(csv.reader(open(log.write(tmp_path / "skipped.csv"))))
    assert rows == [["file", "reason"], ["x.png", "corrupt"], ["y.dcm", "no pixel data"]]


def test_output_inside_input_folder_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for out in (data, data / "out", data / "a" / "b.json"):
        with pytest.raises(InputError, match="inside the input folder"):
            refuse_output_inside(out, [data])
    refuse_output_inside(tmp_path / "runs", [data])  # a sibling is fine
    refuse_output_inside(tmp_path / "data_out", [data])  # a name prefix is not containment


def test_input_file_protects_itself_not_its_folder(tmp_path):
    manifest = tmp_path / "labels.csv"
    manifest.write_text("image,label\n")
    refuse_output_inside(tmp_path / "runs", [manifest])
    with pytest.raises(InputError, match="is the input file"):
        refuse_output_inside(manifest, [manifest])


def test_missing_input_with_a_dot_in_its_name_is_treated_as_a_folder(tmp_path):
    with pytest.raises(InputError):
        refuse_output_inside(tmp_path / "v1.2" / "out", [tmp_path / "v1.2"])
