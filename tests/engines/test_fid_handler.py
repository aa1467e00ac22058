"""FIDHandler: its FID against an independent computation, fixed latents, class matching, RNG, a real run."""

from __future__ import annotations

import csv

import pytest
import torch
from ignite.engine import Engine
from torch import nn
from torch.optim.swa_utils import AveragedModel

from medsynth.engines.checkpoint import AtomicCheckpointSaver, best_checkpoint, full_state
from medsynth.engines.fid_handler import FIDHandler, proportional_labels, sampling_network
from medsynth.metrics.features import RandomCNNExtractor, features_of_tensors
from medsynth.metrics.fid import frechet_distance_from_features
from medsynth.metrics.inception import MissingWeightsError
from medsynth.networks.dcgan import Generator
from tests.engines.test_gan_trainer import LATENT, SIZE, CountingLoader, build_trainer


def blobs(centres: torch.Tensor) -> torch.Tensor:
    """One Gaussian blob (sigma 2 px) per centre ``(N, 2)`` in pixels: ``(N, 1, SIZE, SIZE)`` in [-1, 1]."""
    grid = torch.arange(SIZE, dtype=torch.float32)
    dy = (grid[None, :] - centres[:, :1]) ** 2
    dx = (grid[None, :] - centres[:, 1:]) ** 2
    return (2 * torch.exp(-(dy[:, :, None] + dx[:, None, :]) / 8) - 1)[:, None]


class BlobGenerator(nn.Module):
    """Unconditional stand-in: ``z[:, :2]`` places a blob as in :func:`blob_batches` (the real distribution), or,
    with ``noise``, a fixed random projection of ``z`` gives per-pixel noise."""

    def __init__(self, noise: bool) -> None:
        super().__init__()
        self.noise, self.latent_size, self.num_classes = noise, LATENT, 0
        self.register_buffer("projection", torch.randn(LATENT, SIZE * SIZE, generator=torch.Generator().manual_seed(7)))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.noise:
            return torch.tanh(z @ self.projection).view(-1, 1, SIZE, SIZE)
        return blobs(torch.sigmoid(z[:, :2]) * SIZE)


def blob_batches(num_batches: int = 8, batch: int = 16) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(11)
    return [{"image": blobs(torch.sigmoid(torch.randn(batch, 2, generator=gen)) * SIZE)} for _ in range(num_batches)]


def labelled_batches(counts: tuple[int, int] = (3, 1), repeats: int = 4) -> list[dict[str, torch.Tensor]]:
    """``repeats`` batches of ``sum(counts)`` random 1-channel images, ``counts[k]`` of class k in each."""
    gen = torch.Generator().manual_seed(5)
    labels = torch.arange(2).repeat_interleave(torch.tensor(counts))
    return [{"image": torch.rand(len(labels), 1, SIZE, SIZE, generator=gen) * 2 - 1, "label": labels.clone()}
            for _ in range(repeats)]


def stub_engine(g_network: nn.Module, num_classes: int = 0) -> Engine:
    """An ignite engine carrying what FIDHandler reads from a ConditionalGanTrainer."""
    engine = Engine(lambda e, b: None)
    engine.g_network, engine.g_ema = g_network, None
    engine.num_classes, engine.latent_size = num_classes, LATENT
    engine.state.iteration, engine.state.epoch = 6, 2
    return engine


def tiny_generator(num_classes: int = 2) -> Generator:
    torch.manual_seed(3)
    return Generator(latent_size=LATENT, image_size=SIZE, channels=1, base_channels=8, num_classes=num_classes)


class DDPLike(nn.Module):
    """Keeps the network in ``.module``, as DistributedDataParallel does."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


class ScalarRecorder:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def test_proportional_labels_known_counts():
    assert torch.bincount(proportional_labels(10, torch.tensor([3, 1]))).tolist() == [8, 2]  # 7.5/2.5: tie -> 0
    assert torch.bincount(proportional_labels(10, torch.tensor([1, 1, 1]))).tolist() == [4, 3, 3]
    assert proportional_labels(5, torch.tensor([0, 2])).tolist() == [1] * 5
    with pytest.raises(ValueError, match="positive sum"):
        proportional_labels(4, torch.tensor([0, 0]))


def test_real_like_generator_scores_lower_than_noise():
    fids = {}
    for noise in (False, True):
        handler = FIDHandler(blob_batches(), num_samples=128, batch_size=32)
        fids[noise] = handler.compute(stub_engine(BlobGenerator(noise)))
    assert 0 <= fids[False] < fids[True] / 10


def test_fid_equals_independent_computation_with_matched_classes(tmp_path):
    real, g = labelled_batches(counts=(3, 1)), tiny_generator()
    seen: list[torch.Tensor] = []
    g.register_forward_pre_hook(lambda _, args: seen.append(args[1].clone()))
    writer, log_file = ScalarRecorder(), tmp_path / "logs" / "fid.csv"
    handler = FIDHandler(real, num_samples=40, batch_size=16, seed=4, summary_writer=writer, log_file=log_file)
    engine = stub_engine(g, num_classes=2)
    g.train()
    running_mean = g.project.adn.N.running_mean.clone()
    rng = torch.get_rng_state()
    handler(engine)
    assert torch.equal(torch.get_rng_state(), rng)
    assert g.training and torch.equal(g.project.adn.N.running_mean, running_mean)  # eval mode, flags restored
    assert [len(y) for y in seen] == [16, 16, 8] and torch.bincount(torch.cat(seen)).tolist() == [30, 10]

    # the documented procedure: z from torch.Generator().manual_seed(seed), labels sorted by class, 3:1
    z = torch.randn(40, LATENT, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0] * 30 + [1] * 10)
    reference = tiny_generator()
    reference.load_state_dict(g.state_dict())
    with torch.no_grad():
        fakes = (reference.eval()(z, y) + 1) / 2
    extractor = RandomCNNExtractor(seed=0, in_channels=1)
    real_features = features_of_tensors([(b["image"] + 1) / 2 for b in real], extractor, device="cpu")
    expected = frechet_distance_from_features(real_features.features,
                                              features_of_tensors([fakes], extractor, device="cpu").features)
    fid = engine.state.metrics["fid"]
    assert fid == pytest.approx(expected, rel=1e-5) and handler.history == [(6, 2, fid)]
    assert writer.scalars == [("fid", fid, 6)]
    handler(engine)  # a second call appends a row under the same header
    with open(log_file, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["iteration", "epoch", "fid", "extractor", "num_fake", "num_real"] and len(rows) == 3
    assert rows[1][:2] == ["6", "2"] and float(rows[1][2]) == pytest.approx(fid) and rows[1][4:] == ["40", "16"]


def test_dataset_input_keeps_the_global_rng_and_uniform_classes_without_class_match():
    """A Dataset is batched by a DataLoader, whose iterator draws a seed from the global RNG: it must not leak."""
    items = [{"image": b["image"][i], "label": b["label"][i]} for b in labelled_batches() for i in range(4)]
    g = tiny_generator()
    seen: list[torch.Tensor] = []
    g.register_forward_pre_hook(lambda _, args: seen.append(args[1].clone()))
    handler = FIDHandler(ListDataset(items), num_samples=20, class_match=False)
    rng = torch.get_rng_state()
    fid = handler.compute(stub_engine(g, num_classes=2))
    assert torch.equal(torch.get_rng_state(), rng) and fid > 0
    assert torch.bincount(torch.cat(seen)).tolist() == [10, 10]


def test_conditional_generator_needs_real_labels_for_class_match(tmp_path):
    unlabelled = [{"image": b["image"]} for b in labelled_batches()]
    with pytest.raises(ValueError, match="class_match needs labels"):
        FIDHandler(unlabelled, num_samples=8).compute(stub_engine(tiny_generator(), num_classes=2))
    with pytest.raises(ValueError, match="unknown extractor 'vgg'"):
        FIDHandler(unlabelled, extractor="vgg")
    with pytest.raises(MissingWeightsError, match="nothing is downloaded"):
        FIDHandler(unlabelled, extractor="inception", weights=tmp_path / "absent.pth").compute(
            stub_engine(tiny_generator(), num_classes=2))


def test_samples_the_unwrapped_ema_generator():
    raw, averaged = tiny_generator(), AveragedModel(tiny_generator())
    engine = stub_engine(DDPLike(raw), num_classes=2)
    assert sampling_network(engine) is raw
    engine.g_ema = averaged
    assert sampling_network(engine) is averaged.module and sampling_network(engine, use_ema=False) is raw


def test_in_a_trainer_run_before_a_key_metric_saver(tmp_path):
    trainer = build_trainer(iterations=2)
    trainer.state.max_epochs = 2
    handler = FIDHandler(CountingLoader(num_batches=3), num_samples=16, batch_size=8)
    handler.attach(trainer)  # before the saver: the saver reads this epoch's FID
    saver = AtomicCheckpointSaver(str(tmp_path), full_state(trainer), save_key_metric=True, key_metric_name="fid",
                                  key_metric_negative_sign=True)
    saver.attach(trainer)
    trainer.run()
    fids = [fid for _, _, fid in handler.history]
    assert [(it, ep) for it, ep, _ in handler.history] == [(2, 1), (4, 2)] and fids[0] != fids[1]
    assert trainer.state.metrics["fid"] == fids[-1]
    best = best_checkpoint(saver)
    assert best.metric == pytest.approx(min(fids)) and best.path.is_file()
    assert [p.name for p in tmp_path.glob("*.pt")] == [best.path.name]
    assert "key_metric" in best.path.name
