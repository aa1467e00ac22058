"""FIDHandler with the Inception extractor: a missing weights file stops a run when it starts, not at the first FID."""

from __future__ import annotations

import pytest
from ignite.engine import Events

from medsynth.engines.fid_handler import FIDHandler
from medsynth.metrics.inception import FID_WEIGHTS_FILE, MissingWeightsError
from tests.engines.test_fid_handler import labelled_batches
from tests.engines.test_gan_trainer import build_trainer


@pytest.mark.parametrize("weights", ["absent.pth", None])
def test_missing_inception_weights_stop_the_run_before_its_first_iteration(tmp_path, monkeypatch, weights):
    """No weights file (explicit path, $MEDSYNTH_FID_WEIGHTS or torch hub cache): the handler fails when built,
    naming the file and how to get it, instead of after ``interval`` epochs of training."""
    monkeypatch.delenv("MEDSYNTH_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    iterations: list[int] = []
    trainer = build_trainer(iterations=2)
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: iterations.append(e.state.iteration))
    with pytest.raises(MissingWeightsError, match="absent.pth" if weights else str(tmp_path / "torch")) as error:
        handler = FIDHandler(labelled_batches(), extractor="inception",
                             weights=None if weights is None else tmp_path / weights, interval=1)
        handler.attach(trainer)
        trainer.run()
    assert FID_WEIGHTS_FILE in str(error.value) and "medsynth weights download" in str(error.value)
    assert iterations == []


def test_inception_weights_resolved_at_build_and_the_network_left_for_later(tmp_path, monkeypatch):
    """A weights file that exists is only located (its path kept): nothing is loaded until the first FID."""
    monkeypatch.delenv("MEDSYNTH_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / FID_WEIGHTS_FILE).write_bytes(b"not loaded yet")
    handler = FIDHandler(labelled_batches(), extractor="inception")
    assert handler.weights == cache / FID_WEIGHTS_FILE and handler.extractor == "inception"
