"""Full-state checkpoints: exact resume, interrupted writes, clear errors, generator export."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, TensorDataset

from medsynth.engines.checkpoint import AtomicCheckpointSaver, RNGState, export_generator, full_state, resume
from medsynth.errors import InputError
from medsynth.networks.dcgan import Generator

EPOCHS, SAMPLES, BATCH = 2, 12, 4  # 3 iterations per epoch


def _toy_run(seed: int) -> tuple[Engine, DataLoader]:
    """A seeded toy trainer whose step draws dropout masks and ``torch.randn`` noise.

    The engine carries ``g_network`` / ``g_optimizer`` / ``g_scaler`` like a GAN trainer, so ``full_state`` reads it.
    """
    torch.manual_seed(seed), random.seed(seed), np.random.seed(seed)  # also seeds the loader's shuffling
    data = torch.Generator().manual_seed(99)  # the data itself never changes between runs
    x, y = torch.randn(SAMPLES, 4, generator=data), torch.randn(SAMPLES, 1, generator=data)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        model.train()
        opt.zero_grad()
        xb, yb = batch
        loss = nn.functional.mse_loss(model(xb + 0.1 * torch.randn_like(xb)), yb)
        loss.backward()
        opt.step()
        return loss.item()

    engine = Engine(step)
    engine.g_network, engine.g_optimizer = model, opt
    engine.g_scaler = torch.amp.GradScaler("cpu", enabled=False)
    return engine, loader


def _snapshot(engine: Engine) -> dict[str, torch.Tensor]:
    state = {f"w.{k}": v.clone() for k, v in engine.g_network.state_dict().items()}
    for i, s in engine.g_optimizer.state_dict()["state"].items():
        state.update({f"opt.{i}.{k}": torch.as_tensor(v).clone() for k, v in s.items()})
    return state


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _save_dict(engine: Engine, with_rng: bool) -> dict:
    return full_state(engine, rng=with_rng)


def _run_split(tmp_path: Path, with_rng: bool) -> dict[str, torch.Tensor]:
    """Epoch 1, checkpoint, then a fresh process-like rebuild that resumes and runs epoch 2."""
    engine, loader = _toy_run(seed=0)
    AtomicCheckpointSaver(str(tmp_path), _save_dict(engine, with_rng), save_interval=1).attach(engine)
    engine.run(loader, max_epochs=1)
    engine, loader = _toy_run(seed=0)  # rerunning the script reseeds as at the start
    loaded = resume(tmp_path / "checkpoint_epoch=1.pt", _save_dict(engine, with_rng))
    assert "trainer" in loaded and engine.state.epoch == 1 and engine.state.iteration == 3
    engine.run(loader, max_epochs=EPOCHS)
    assert engine.state.iteration == 6
    return _snapshot(engine)


def test_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    """Split at the epoch boundary: ignite's Engine restarts the DataLoader at each run and epoch, so a
    mid-epoch resume would replay the epoch's first batches. The loader shuffles from torch's global RNG
    (no ``generator``), which RNGState carries; see RNGState for why a loader-owned generator is off by one draw."""
    engine, loader = _toy_run(seed=0)
    engine.run(loader, max_epochs=EPOCHS)
    straight = _snapshot(engine)
    assert _equal(_run_split(tmp_path, with_rng=True), straight)


def test_resume_without_rng_state_differs(tmp_path: Path) -> None:
    """Without RNGState the resumed epoch replays epoch 1's noise, dropout masks and batch order."""
    engine, loader = _toy_run(seed=0)
    engine.run(loader, max_epochs=EPOCHS)
    assert not _equal(_run_split(tmp_path, with_rng=False), _snapshot(engine))


def test_rng_state_roundtrip(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    torch.save({"rng": RNGState({"loader": gen}).state_dict()}, tmp_path / "rng.pt")

    def draw() -> tuple:
        return random.random(), np.random.rand(), np.random.randn(), torch.rand(1).item(), torch.rand(1, generator=gen)

    first = draw()
    resume(tmp_path / "rng.pt", {"rng": RNGState({"loader": gen})})  # weights_only load must accept it
    assert draw() == first


def _half_write_then_crash(real_save):
    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, (str, Path)):  # MONAI's non-atomic saver passes the final path itself
            Path(f).write_bytes(half)
        else:
            f.write(half)
        raise OSError("simulated crash mid-write")

    return save


@pytest.mark.parametrize("saver_cls", [AtomicCheckpointSaver, CheckpointSaver])
def test_interrupted_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch, saver_cls) -> None:
    """The second save (n_saved=1) writes half its bytes and raises. MONAI's own saver, as a contrast,
    deletes epoch 1 first and leaves a truncated epoch 2 under the final name."""
    engine, loader = _toy_run(seed=0)
    save_dict = _save_dict(engine, with_rng=True)
    saver_cls(str(tmp_path), save_dict, save_interval=1, n_saved=1).attach(engine)
    engine.run(loader, max_epochs=1)
    monkeypatch.setattr(torch, "save", _half_write_then_crash(torch.save))
    with pytest.raises(OSError, match="simulated crash"):
        engine.run(loader, max_epochs=2)
    monkeypatch.undo()
    files = sorted(p.name for p in tmp_path.iterdir())
    if saver_cls is CheckpointSaver:
        assert files == ["checkpoint_epoch=2.pt"]
        with pytest.raises(InputError, match="truncated"):
            resume(tmp_path / "checkpoint_epoch=2.pt", save_dict)
        return
    assert files == ["checkpoint_epoch=1.pt"]  # no partial file, and ignite removed its tmpXXXX file
    assert "trainer" in resume(tmp_path / "checkpoint_epoch=1.pt", save_dict)
    assert engine.state.epoch == 1


def test_truncated_and_corrupt_files_raise_input_error(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    good = tmp_path / "good.pt"
    torch.save({"g_network": model.state_dict(), "trainer": {"iteration": 1}}, good)
    truncated, corrupt = tmp_path / "truncated.pt", tmp_path / "corrupt.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt.write_bytes(b"not a checkpoint at all")
    for bad in (truncated, corrupt):
        with pytest.raises(InputError, match="not a medsynth checkpoint or truncated") as info:
            resume(bad, {"g_network": model, "g_optimizer": torch.optim.SGD(model.parameters(), lr=0.1)})
        assert info.value.path == str(bad)
    with pytest.raises(InputError, match="not found"):
        resume(tmp_path / "absent.pt", {"g_network": model})


def test_missing_keys_are_listed(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    path = tmp_path / "ckpt.pt"
    torch.save({"g_network": model.state_dict(), "rng": RNGState().state_dict()}, path)
    save_dict = {"g_network": model, "g_ema": AveragedModel(model), "d_network": nn.Linear(2, 2)}
    with pytest.raises(InputError, match=r"lacks \['g_ema', 'd_network'\]"):
        resume(path, save_dict)
    with pytest.warns(UserWarning, match="lacks"):
        assert resume(path, save_dict, strict=False) == ["g_network"]


def _generator() -> Generator:
    return Generator(image_size=16, base_channels=8, channels=1, latent_size=8)


class _DDPLike(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module


@pytest.mark.parametrize("wrap", [lambda g: g, _DDPLike, AveragedModel])
def test_export_generator_loads_into_fresh_generator(tmp_path: Path, wrap) -> None:
    gen = _generator()
    path = export_generator(wrap(gen), tmp_path / "models" / "model.pt")
    fresh = _generator()
    fresh.load_state_dict(torch.load(path, weights_only=True))  # strict: same keys, no prefix
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), gen.state_dict().values(), strict=True))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # the temp file was renamed away


def test_export_prefers_ema_from_a_checkpoint_file(tmp_path: Path) -> None:
    gen = _generator()
    ema = AveragedModel(gen)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.add_(1.0)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"g_network": gen.state_dict(), "g_ema": ema.state_dict()}, ckpt)
    for use_ema, source in ((True, ema.module), (False, gen)):
        path = export_generator(ckpt, tmp_path / f"model_{use_ema}.pt", use_ema=use_ema)
        fresh = _generator()
        fresh.load_state_dict(torch.load(path, weights_only=True))
        assert torch.equal(next(fresh.parameters()), next(source.parameters()))


@pytest.mark.parametrize("saver_cls", [CheckpointSaver, AtomicCheckpointSaver])
def test_key_metric_computed_every_few_epochs(tmp_path: Path, saver_cls) -> None:
    """A metric first set at epoch 2 (FID every 2 epochs): MONAI's saver fails at epoch 1, ours waits for it."""
    engine, loader = _toy_run(seed=0)
    engine.add_event_handler(Events.EPOCH_COMPLETED(every=2),
                             lambda e: e.state.metrics.update(fid=10.0 - e.state.epoch))
    saver = saver_cls(str(tmp_path), {"model": engine.g_network}, save_key_metric=True, key_metric_name="fid",
                      key_metric_negative_sign=True, key_metric_n_saved=1)
    saver.attach(engine)
    if saver_cls is CheckpointSaver:
        with pytest.raises(KeyError, match="fid"):
            engine.run(loader, max_epochs=4)
        return
    engine.run(loader, max_epochs=4)
    assert [p.name for p in tmp_path.glob("*key_metric*")] == ["model_key_metric=-6.0000.pt"]


def test_resume_keeps_configured_max_epochs_and_refuses_a_later_checkpoint(tmp_path: Path) -> None:
    engine, loader = _toy_run(seed=0)
    engine.run(loader, max_epochs=2)
    path = tmp_path / "ckpt.pt"
    torch.save({"trainer": engine.state_dict(), "g_network": engine.g_network.state_dict()}, path)
    longer, _ = _toy_run(seed=0)
    longer.state.max_epochs = 5
    resume(path, {"trainer": longer, "g_network": longer.g_network})
    assert (longer.state.epoch, longer.state.max_epochs) == (2, 5)
    shorter, _ = _toy_run(seed=0)
    shorter.state.max_epochs = 1
    with pytest.raises(InputError, match="past max_epochs 1"):
        resume(path, {"trainer": shorter, "g_network": shorter.g_network})
