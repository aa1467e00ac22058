"""GeneratorExportHandler and bake_parametrizations: model.pt from the best checkpoint, spectral norm baked away."""

from __future__ import annotations

import copy

import pytest
import torch
from ignite.engine import Engine, Events
from torch.nn.utils import parametrize
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from medsynth.engines.checkpoint import AtomicCheckpointSaver, bake_parametrizations, export_generator, full_state
from medsynth.engines.export_handler import GeneratorExportHandler
from medsynth.engines.gan_trainer import ConditionalGanTrainer
from medsynth.networks.dcgan import Discriminator, Generator
from tests.engines.test_gan_trainer import LATENT, SIZE, CountingLoader

SCRIPT_DEPRECATED = "ignore:`torch.jit.script` is deprecated:FutureWarning"


def generator(spectral_norm: bool) -> Generator:
    return Generator(latent_size=LATENT, image_size=SIZE, channels=1, base_channels=8, num_classes=2,
                     spectral_norm=spectral_norm)


def sn_trainer(epochs: int, ema: bool) -> ConditionalGanTrainer:
    """Spectral-norm G and D (projection), 2 iterations per epoch, with an EMA (use_buffers) when ``ema``."""
    torch.manual_seed(0)
    g = generator(spectral_norm=True)
    d = Discriminator(image_size=SIZE, channels=1, base_channels=8, num_classes=2, conditioning="projection",
                      spectral_norm=True)
    g_ema = AveragedModel(g, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True) if ema else None
    return ConditionalGanTrainer(
        device="cpu", max_epochs=epochs, epoch_length=2, train_data_loader=CountingLoader(num_classes=2),
        g_network=g, g_optimizer=torch.optim.Adam(g.parameters(), 1e-2), d_network=d,
        d_optimizer=torch.optim.Adam(d.parameters(), 1e-2), g_ema=g_ema,
    )


def latents() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(6, LATENT, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1] * 3)


def outputs(module: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(*latents())


def load_plain(path) -> Generator:
    """model.pt into a generator built WITHOUT spectral norm (strict: every key must match)."""
    plain = generator(spectral_norm=False)
    plain.load_state_dict(torch.load(path, weights_only=True))
    return plain


def test_bake_parametrizations_keeps_eval_outputs():
    g = generator(spectral_norm=True).train()
    for _ in range(3):  # training forwards move the power-iteration vectors
        g(*latents())
    before = outputs(copy.deepcopy(g))
    g.train()
    assert bake_parametrizations(g) is g and g.training  # the flag is restored
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    assert torch.allclose(outputs(g), before, atol=1e-6)
    plain = generator(spectral_norm=False)
    plain.load_state_dict(g.state_dict())
    assert torch.allclose(outputs(plain), before, atol=1e-6)


def test_export_generator_bakes_modules_and_state_dicts_given_like(tmp_path):
    g = generator(spectral_norm=True)
    g(*latents())  # one training forward: u, v no longer at their initial values
    path = export_generator(g, tmp_path / "model.pt")
    assert parametrize.is_parametrized(g.project.linear)  # the caller's network is untouched
    assert torch.allclose(outputs(load_plain(path)), outputs(g), atol=1e-6)
    state_path = export_generator({"g_network": g.state_dict()}, tmp_path / "from_state.pt", like=generator(True))
    assert torch.allclose(outputs(load_plain(state_path)), outputs(g), atol=1e-6)
    with pytest.raises(ValueError, match="does not fit `like`"):
        export_generator({"g_network": g.state_dict()}, tmp_path / "bad.pt", like=generator(False))


class MetricSequence:
    """Stands in for FIDHandler: ``engine.state.metrics["fid"] = values[epoch - 1]`` at each epoch's end."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        engine.state.metrics["fid"] = self.values[engine.state.epoch - 1]


@pytest.mark.filterwarnings(SCRIPT_DEPRECATED)
@pytest.mark.parametrize("filename", [None, "best.pt"])
def test_exports_the_best_checkpoints_ema_baked_and_scriptable(tmp_path, filename):
    trainer = sn_trainer(epochs=3, ema=True)
    snapshots: list[torch.nn.Module] = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: snapshots.append(copy.deepcopy(e.g_ema.module)))
    MetricSequence([5.0, 1.0, 3.0]).attach(trainer)  # best at epoch 2, not the last
    saver = AtomicCheckpointSaver(str(tmp_path / "ckpt"), full_state(trainer), save_key_metric=True,
                                  key_metric_name="fid", key_metric_negative_sign=True, key_metric_filename=filename)
    saver.attach(trainer)
    export = GeneratorExportHandler(tmp_path / "models" / "model.pt", checkpoint_saver=saver)
    export.attach(trainer)
    trainer.run()

    assert export.exported.network == "g_ema" and export.exported.metric == 1.0
    assert export.exported.checkpoint == tmp_path / "ckpt" / (filename or "checkpoint_key_metric=-1.0000.pt")
    plain = load_plain(tmp_path / "models" / "model.pt")
    best, last = outputs(snapshots[1]), outputs(snapshots[2])
    assert torch.allclose(outputs(plain), best, atol=1e-6) and not torch.allclose(outputs(plain), last, atol=1e-3)
    scripted = torch.jit.script(plain)
    assert torch.allclose(scripted(*latents()), best, atol=1e-6)


def test_without_a_saver_exports_the_current_raw_generator(tmp_path):
    trainer = sn_trainer(epochs=1, ema=False)
    trainer.state.metrics["fid"] = 7.5  # as a FIDHandler would have left it
    export = GeneratorExportHandler(tmp_path / "model.pt")
    export.attach(trainer)
    trainer.run()
    assert export.exported.checkpoint is None and export.exported.network == "g_network"
    assert torch.allclose(outputs(load_plain(tmp_path / "model.pt")), outputs(trainer.g_network), atol=1e-6)
    assert parametrize.is_parametrized(trainer.g_network.project.linear)  # training network left as it was


def test_saver_without_a_checkpoint_yet_falls_back_to_the_engines_ema(tmp_path):
    trainer = sn_trainer(epochs=1, ema=True)
    saver = AtomicCheckpointSaver(str(tmp_path / "ckpt"), full_state(trainer), save_key_metric=True,
                                  key_metric_name="fid", key_metric_negative_sign=True)  # never attached
    export = GeneratorExportHandler(tmp_path / "model.pt", checkpoint_saver=saver)
    export.attach(trainer)
    trainer.run()
    assert export.exported.checkpoint is None and export.exported.network == "g_ema"
    assert torch.allclose(outputs(load_plain(tmp_path / "model.pt")), outputs(trainer.g_ema.module), atol=1e-6)
