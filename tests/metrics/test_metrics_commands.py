"""The evaluate-synthetic and weights verbs, on a parser built with ``register`` (as cli.py does)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_fid.inception import FID_WEIGHTS_URL

from medsynth.metrics import inception
from medsynth.metrics.commands import register
from medsynth.metrics.inception import FID_WEIGHTS_FILE, MissingWeightsError

VERBS = [["evaluate-synthetic"], ["weights"], ["weights", "download"]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsynth")
    register(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return parser


def _run(argv: list[str]):
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args([*verb, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: medsynth " + " ".join(verb))


@pytest.fixture
def sets(tmp_path):
    rng = np.random.default_rng(0)
    for name, n, offset in (("real", 14, 0), ("synthetic", 10, 30)):
        (tmp_path / name).mkdir()
        for i in range(n):
            pixels = np.clip(rng.normal(100 + offset, 30, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    return tmp_path


def test_evaluate_synthetic_writes_the_report_and_prints_a_summary(sets, capsys):
    _run(["evaluate-synthetic", "--real", str(sets / "real"), "--synthetic", str(sets / "synthetic"),
          "--out", str(sets / "out"), "--extractor", "random-cnn", "--bootstrap", "3", "--kid-subsets", "3",
          "--ms-ssim-pairs", "10", "--no-progress"])
    report = json.loads((sets / "out" / "report.json").read_text())
    assert report["extractor"] == "random-cnn(seed=0)" and report["settings"]["bootstrap"] == 3
    out = capsys.readouterr().out
    assert "FID" in out and "real-vs-real" in out and "memorization: skipped" in out


def test_classifier_extractor_from_flags(sets, tmp_path):
    from torchvision.models import resnet18

    torch.save(resnet18(weights=None, num_classes=2).state_dict(), tmp_path / "clf.pt")
    _run(["evaluate-synthetic", "--real", str(sets / "real"), "--synthetic", str(sets / "synthetic"),
          "--out", str(sets / "out"), "--extractor", "classifier", "--classifier-network",
          "torchvision.models.resnet18", "--classifier-args", '{"num_classes": 2}', "--classifier-checkpoint",
          str(tmp_path / "clf.pt"), "--classifier-size", "32", "--classifier-channels", "3",
          "--bootstrap", "0", "--kid-subsets", "2", "--ms-ssim-pairs", "5", "--no-progress"])
    report = json.loads((sets / "out" / "report.json").read_text())
    assert report["extractor"] == "classifier:ResNet(clf.pt)@avgpool"
    assert "inception_score" in report["overall"]  # the classifier's own probabilities


def test_missing_inception_weights_is_a_clear_error(sets, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    with pytest.raises(MissingWeightsError, match="medsynth weights download"):
        _run(["evaluate-synthetic", "--real", str(sets / "real"), "--synthetic", str(sets / "synthetic"),
              "--out", str(sets / "out")])
    assert not (sets / "out").exists()


def test_bad_flags_are_refused(sets, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["evaluate-synthetic", "--real", "r", "--synthetic", "s", "--out", "o",
                              "--window", "200,-100"])
    assert "LOW must be below HIGH" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs --classifier-network"):
        _run(["evaluate-synthetic", "--real", str(sets / "real"), "--synthetic", str(sets / "synthetic"),
              "--out", str(sets / "out"), "--extractor", "classifier"])


def test_weights_download_would_fetch_the_release_to_dest(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = _run(["weights", "download", "--dest", str(tmp_path / "w")])
    assert path == tmp_path / "w" / FID_WEIGHTS_FILE
    assert calls == [(FID_WEIGHTS_URL, str(path), "6726825d")]
    assert str(path) in capsys.readouterr().out


def test_the_lead_cli_exposes_the_verbs_once_wired(sets, capsys):
    from medsynth.cli import build_parser, main

    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "evaluate-synthetic" not in verbs:
        pytest.skip("medsynth.cli does not call medsynth.metrics.commands.register yet")
    code = main(["evaluate-synthetic", "--real", str(sets / "real"), "--synthetic", str(sets / "nope"),
                 "--out", str(sets / "out"), "--extractor", "random-cnn"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("medsynth: error:") and "Traceback" not in err and "nope" in err
