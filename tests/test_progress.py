"""Progress bars: shown with a time estimate on a terminal, silent in logs; one look (medsynth.progress) everywhere."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from ignite.engine import Events
from PIL import Image
from tqdm import tqdm

import medsynth.progress
from medsynth.export import LatentDataset
from medsynth.metrics.features import RandomCNNExtractor, extract_features
from medsynth.networks.dcgan import Generator
from medsynth.progress import progress
from tests.export.test_synthetic import evaluator, fake_checkpoint, make_writer
from tests.helpers import FakeTTY

ETA = re.compile(r"\[\d\d:\d\d<(\d\d:\d\d|\?)")  # tqdm's "[elapsed<remaining" field


@pytest.fixture
def pngs(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def bars(monkeypatch) -> tuple[list[tqdm], FakeTTY]:
    """Every bar :func:`progress` makes, each drawn on one fake terminal (so it is enabled)."""
    made: list[tqdm] = []
    terminal = FakeTTY()

    class Recording(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = terminal
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(medsynth.progress, "tqdm", Recording)
    return made, terminal


def closed(bar: tqdm) -> bool:
    """An enabled bar is disabled by ``close()`` and leaves tqdm's registry of live bars."""
    return bar.disable and bar not in tqdm._instances


def test_helper_settings_and_silence_off_a_terminal(capsys):
    bar = progress(range(3), desc="work", unit="case")
    assert list(bar) == [0, 1, 2] and bar.disable  # stderr is pytest's capture, not a terminal
    assert capsys.readouterr().err == ""
    terminal = FakeTTY()
    shown = progress(total=5, desc="work", unit="case", file=terminal)
    assert not shown.disable and not shown.leave and shown.dynamic_ncols and shown.mininterval == 0.5
    assert (shown.desc, shown.unit, shown.total) == ("work", "case", 5)
    shown.update(2)
    shown.close()
    assert "work" in terminal.getvalue() and ETA.search(terminal.getvalue())


def test_extract_features_prints_no_bar_when_stderr_is_not_a_terminal(pngs, capsys):
    extract_features(pngs, RandomCNNExtractor(in_channels=1), batch_size=2)
    err = capsys.readouterr().err
    assert "features" not in err and "\r" not in err and "|" not in err, err


def test_extract_features_on_a_terminal_shows_what_and_a_time_estimate(pngs):
    terminal = FakeTTY()
    features = extract_features(pngs, RandomCNNExtractor(in_channels=1), batch_size=2, progress_file=terminal)
    shown = terminal.getvalue()
    assert len(features.features) == 3
    assert "features (random-cnn(seed=0))" in shown and "img" in shown and ETA.search(shown), shown
    quiet = FakeTTY()
    extract_features(pngs, RandomCNNExtractor(in_channels=1), progress=False, progress_file=quiet)
    assert quiet.getvalue() == ""


def test_synthetic_set_bar_counts_the_images_and_closes_when_done_or_failed(tmp_path, bars):
    made, terminal = bars
    generator = Generator(latent_size=8, image_size=16, channels=1, num_blocks=2, base_channels=4, num_classes=2)
    counts = {0: 3, 1: 6}
    writer = make_writer(tmp_path, tmp_path / "synthetic", "xray", checkpoint=fake_checkpoint(tmp_path, generator),
                         counts=counts)
    evaluator(generator, LatentDataset(counts, latent_size=8), writer).run()
    assert len(made) == 1 and (made[0].total, made[0].n, made[0].unit) == (9, 9, "img") and closed(made[0])
    assert "synthetic set (synthetic)" in terminal.getvalue() and ETA.search(terminal.getvalue())

    engine = evaluator(generator, LatentDataset(counts, latent_size=8), make_writer(
        tmp_path, tmp_path / "synthetic", "xray", checkpoint=fake_checkpoint(tmp_path, generator), counts=counts))

    def fail(_):
        raise RuntimeError("out of memory")

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        engine.run()
    assert len(made) == 2 and made[1].n == 8 and closed(made[1])

    unexpected = make_writer(tmp_path, tmp_path / "other", "xray", checkpoint=fake_checkpoint(tmp_path, generator))
    evaluator(generator, LatentDataset({1: 5}, latent_size=8), unexpected).run()  # no counts: the dataset's length
    assert (made[2].total, made[2].n) == (5, 5) and closed(made[2])


def test_demo_writer_bar_over_the_cases(tmp_path, bars):
    try:  # the module may move to medsynth.demo.writer
        from medsynth.demo.writer import write_demo_dataset
    except ImportError:
        from medsynth.data.demo import write_demo_dataset
    made, terminal = bars
    torch.manual_seed(0)
    write_demo_dataset("skin", tmp_path / "demo", n=3)
    assert [(b.total, b.n, b.unit) for b in made] == [(3, 3, "img")] and closed(made[0])
    assert "demo skin images" in terminal.getvalue()
