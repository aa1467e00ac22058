"""One process or many: rank from torchrun's environment, DDP only once the group is up, rank-0 handlers."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events

from medsynth.engines import distributed
from medsynth.engines.stats_handler import TrainingLogHandler, rank0_summary_writer
from tests.helpers import FakeTTY


def test_rank_reads_torchrun_environment_before_the_group(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert distributed.rank() == 1 and not distributed.is_rank0()
    monkeypatch.delenv("RANK")
    assert distributed.rank() == 0 and distributed.is_rank0()


def test_wrap_is_identity_in_one_process_and_refuses_ddp_without_the_group():
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net, "cpu", False) is net
    with pytest.raises(RuntimeError, match="init_process_group"):
        distributed.wrap(net, "cpu", True)


def test_local_device_is_the_cpu_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine")
    assert distributed.local_device() == torch.device("cpu")


def _engine():
    return Engine(lambda engine, batch: {"g_loss": 1.0})


@pytest.mark.parametrize("rank", ["0", "1"])
def test_log_handler_attaches_on_rank0_only(monkeypatch, tmp_path, rank):
    monkeypatch.setenv("RANK", rank)
    writer = rank0_summary_writer(tmp_path / "tb")
    assert (writer is None) == (rank != "0")
    engine = _engine()
    before = sum(len(engine._event_handlers[e]) for e in (Events.ITERATION_COMPLETED, Events.EPOCH_STARTED))
    TrainingLogHandler(output_transform=lambda x: x, summary_writer=writer, log_interval=1).attach(engine)
    after = sum(len(engine._event_handlers[e]) for e in (Events.ITERATION_COMPLETED, Events.EPOCH_STARTED))
    assert (after > before) == (rank == "0")
    engine.run([0, 1], max_epochs=1)
    if writer is not None:
        writer.close()
    assert (tmp_path / "tb").exists() == (rank == "0")


def test_log_handler_refuses_a_zero_interval():
    with pytest.raises(ValueError, match="log_interval"):
        TrainingLogHandler(output_transform=lambda x: x, log_interval=0)


def test_log_handler_shows_a_progress_bar_on_a_terminal(monkeypatch):
    import sys

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.delenv("RANK", raising=False)
    engine = _engine()
    TrainingLogHandler(output_transform=lambda x: x, log_interval=1).attach(engine)
    engine.run([0, 1], max_epochs=2)
    assert "Epoch [2/2]" in tty.getvalue() and "<" in tty.getvalue()  # the epoch and its time estimate
