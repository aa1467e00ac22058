"""The GAN trainer, full-state checkpoints and DiffAugment together: stop, resume, same weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from medsynth.engines.checkpoint import AtomicCheckpointSaver, export_generator, full_state, resume
from medsynth.engines.diffaugment import DiffAugment
from medsynth.engines.gan_trainer import ConditionalGanTrainer
from medsynth.networks.dcgan import Discriminator, Generator

SIZE, LATENT, EPOCHS = 16, 8, 2


class _Pairs(torch.utils.data.Dataset):
    """16 labelled 1-channel images in [-1, 1], two classes, fixed content."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(7)
        self.images = torch.rand(16, 1, SIZE, SIZE, generator=gen) * 2 - 1
        self.labels = torch.arange(16) % 2

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i]}


def _trainer() -> ConditionalGanTrainer:
    """A fresh cDCGAN run as a script would build it: seeded, shuffling from the global RNG, EMA, DiffAugment."""
    torch.manual_seed(0)
    g = Generator(latent_size=LATENT, image_size=SIZE, channels=1, base_channels=8, num_classes=2, dropout=0.1)
    d = Discriminator(image_size=SIZE, channels=1, base_channels=8, num_classes=2, conditioning="projection",
                      spectral_norm=True, dropout=0.2)
    return ConditionalGanTrainer(
        device="cpu", max_epochs=EPOCHS, train_data_loader=DataLoader(_Pairs(), batch_size=4, shuffle=True),
        g_network=g, g_optimizer=torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999)),
        d_network=d, d_optimizer=torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.999)),
        loss="hinge", n_critic=2, epoch_length=2,
        g_ema=AveragedModel(g, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True),
        augment=DiffAugment("translation,cutout"),
    )


def _weights(trainer: ConditionalGanTrainer) -> dict[str, torch.Tensor]:
    nets = {"g": trainer.g_network, "d": trainer.d_network, "ema": trainer.g_ema}
    return {f"{n}.{k}": v.detach().clone() for n, m in nets.items() for k, v in m.state_dict().items()}


def test_stop_and_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = _trainer()
    straight.run()
    expected = _weights(straight)

    first = _trainer()
    first.state.max_epochs = 1  # the run is stopped after epoch 1 (as a killed job would be)
    AtomicCheckpointSaver(str(tmp_path), full_state(first), save_interval=1).attach(first)
    first.run()
    assert not all(torch.equal(v, expected[k]) for k, v in _weights(first).items())

    resumed = _trainer()
    resume(tmp_path / "checkpoint_epoch=1.pt", full_state(resumed))
    assert resumed.state.epoch == 1 and resumed.state.iteration == 2
    resumed.state.max_epochs = EPOCHS
    resumed.run()
    got = _weights(resumed)
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected), [k for k in expected
                                                                     if not torch.equal(got[k], expected[k])]


def test_export_from_a_trainer_checkpoint_loads_into_a_fresh_generator(tmp_path: Path) -> None:
    trainer = _trainer()
    trainer.state.max_epochs = 1
    AtomicCheckpointSaver(str(tmp_path), full_state(trainer), save_interval=1).attach(trainer)
    trainer.run()
    path = export_generator(tmp_path / "checkpoint_epoch=1.pt", tmp_path / "model.pt")
    fresh = Generator(latent_size=LATENT, image_size=SIZE, channels=1, base_channels=8, num_classes=2, dropout=0.1)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    ema = trainer.g_ema.module.state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in fresh.state_dict().items())  # the EMA generator by default
