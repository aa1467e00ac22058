"""The ``medsynth`` command: every verb answers --help, bad input ends in a one-line error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medsynth.cli import build_parser, main

VERBS = [["demo-data"], ["datalist"], ["datalist", "folders"], ["datalist", "csv"], ["datalist", "volumes"],
         ["evaluate-synthetic"], ["weights"], ["weights", "download"], ["baselines"]]


def _all_verb_paths(parser, prefix=()):
    """Every sub-command path of the parser, found by walking argparse's sub-parser actions."""
    for action in parser._actions:
        for name, sub in getattr(action, "choices", {}).items() if action.nargs == "A..." else []:
            yield (*prefix, name)
            yield from _all_verb_paths(sub, (*prefix, name))


def test_every_verb_is_covered_here():
    assert sorted(_all_verb_paths(build_parser())) == sorted(tuple(v) for v in VERBS)


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: medsynth " + " ".join(verb))


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "medsynth.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("medsynth ")


def test_bad_input_is_one_line_error_not_traceback(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    code = main(["datalist", "folders", str(missing), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and str(missing) in err and err.startswith("medsynth: error:")


def test_bad_split_fractions_rejected_by_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["datalist", "folders", str(tmp_path), "--out", str(tmp_path / "o"), "--split", "0.5,0.6,0.1"])
    assert exit_info.value.code == 2
    assert "sum" in capsys.readouterr().err


def test_baselines_verb_writes_the_report_and_refuses_output_in_the_data(tmp_path, capsys):
    from medsynth.data.embedded import demo_datalist

    skin = demo_datalist("skin", n=120, root=tmp_path / "skin")
    code = main(["baselines", str(skin), "--out", str(tmp_path / "base"), "--names", "logistic_regression",
                 "--features", "pixels", "--image-size", "16", "--n-resamples", "50"])
    assert code == 0
    table = (tmp_path / "base" / "baselines.md").read_text()
    assert "logistic_regression" in table
    assert (tmp_path / "base" / "logistic_regression_pixels" / "metrics.json").is_file()
    inside = skin.parent / "baselines"  # next to the datalist file: part of the data
    code = main(["baselines", str(skin), "--out", str(inside), "--names", "svm"])
    assert code == 2 and "inside the input folder" in capsys.readouterr().err
    assert not inside.exists()


def test_datalist_verb_prints_images_patients_and_classes_per_split(tmp_path, capsys):
    import json
    import re

    from medsynth.data.splits import SPLITS
    from medsynth.demo.writer import write_demo_dataset

    demo = write_demo_dataset("skin", tmp_path / "demo", n=30, seed=2)
    out = tmp_path / "dl"
    code = main(["datalist", "csv", str(demo.root / "metadata.csv"), "--image-root", str(demo.root / "images"),
                 "--image-col", "image_name", "--label-col", "target", "--patient-col", "patient_id",
                 "--classes", "benign,malignant", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    summary = json.loads((out / "datalist.json").read_text())["split"]["summary"]
    for split in SPLITS:
        s = summary[split]
        line = next(line for line in printed if line.strip().startswith(f"{split}:"))
        assert re.fullmatch(rf" *{split}: {s['images']} images, {s['patients']} patients "
                            rf"\(\d\.\d\d images/patient\), benign {s['classes']['benign']} / "
                            rf"malignant {s['classes']['malignant']}", line)
