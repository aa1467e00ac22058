"""SampleGridHandler, make_grid_image and stock TensorBoard scalars on ConditionalGanTrainer, tiny 16 px on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.handlers import TensorBoardStatsHandler
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter

from medsynth.engines.gan_trainer import scalars
from medsynth.engines.handlers import UNCONDITIONAL_ROWS, SampleGridHandler, make_grid_image
from tests.engines.test_gan_trainer import SIZE, build_trainer

TILE = SIZE + 2  # a tile plus the default padding


def grid_size(cols: int, rows: int) -> tuple[int, int]:
    """(width, height) of an unlabelled grid of 16 px tiles."""
    return cols * TILE + 2, rows * TILE + 2


def test_make_grid_image_maps_range_tiles_and_margin():
    images = torch.stack([torch.full((3, SIZE, SIZE), v) for v in (-1.0, 0.0, 1.0, 2.0)])
    image = make_grid_image(images, nrow=3)
    assert image.mode == "RGB" and image.size == grid_size(3, 2)
    pixels = np.asarray(image)
    assert [int(pixels[2, 2 + k * TILE, 0]) for k in range(3)] == [0, 128, 255]
    assert int(pixels[2 + TILE, 2, 0]) == 255 and int(pixels[0, 0, 0]) == 0  # clipped; black padding
    labelled = make_grid_image(images[:, :1], nrow=2, row_labels=["benign", "malignant"], label_width=40)
    assert labelled.mode == "L" and labelled.size == (40 + grid_size(2, 2)[0], grid_size(2, 2)[1])
    assert np.asarray(labelled)[:, :40].max() > 200  # the labels are drawn (antialiased) in the margin
    with pytest.raises(ValueError, match="row_labels"):
        make_grid_image(images, nrow=2, row_labels=["one"])


def test_grid_written_every_interval_with_class_rows_and_label_margin(tmp_path):
    trainer = build_trainer(iterations=3)
    SampleGridHandler(str(tmp_path), interval=2, samples_per_class=3, class_names=["benign", "malignant"]).attach(
        trainer)
    trainer.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "samples_iter_0000002.png", "samples_latest.png"]  # not at 1 or 3; no temporary file left
    assert (tmp_path / "samples_latest.png").read_bytes() == (tmp_path / "samples_iter_0000002.png").read_bytes()
    with Image.open(tmp_path / "samples_iter_0000002.png") as image:
        width, height = grid_size(3, 2)
        assert image.mode == "L" and image.height == height and image.width > width + len("malignant") * 3


def test_unconditional_and_epoch_level(tmp_path):
    trainer = build_trainer(num_classes=0, iterations=2)
    SampleGridHandler(str(tmp_path), interval=1, samples_per_class=3, epoch_level=True).attach(trainer)
    trainer.run()
    assert [p.name for p in tmp_path.glob("samples_iter_*")] == ["samples_iter_0000002.png"]  # end of epoch only
    with Image.open(tmp_path / "samples_latest.png") as image:
        assert image.size == grid_size(3, UNCONDITIONAL_ROWS)  # no labels, no margin


def test_same_seed_same_grid_whatever_the_training_rng(tmp_path):
    grids = []
    for run, (training_seed, seed) in enumerate([(1, 0), (2, 0), (1, 5)]):
        trainer = build_trainer()  # same initial weights
        torch.manual_seed(training_seed)
        SampleGridHandler(str(tmp_path / str(run)), seed=seed)(trainer)
        grids.append((tmp_path / str(run) / "samples_iter_0000000.png").read_bytes())
    assert grids[0] == grids[1] and grids[0] != grids[2]


def test_training_rng_and_weights_untouched(tmp_path):
    weights = []
    for with_handler in (False, True):
        trainer = build_trainer(iterations=2)
        if with_handler:
            SampleGridHandler(str(tmp_path), interval=1).attach(trainer)
        trainer.run()
        weights.append([t.clone() for t in trainer.g_network.state_dict().values()] + [torch.randn(4)])
    assert len(list(tmp_path.glob("samples_iter_*"))) == 2
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_eval_no_grad_then_modes_and_parameters_restored(tmp_path):
    trainer = build_trainer()
    g = trainer.g_network.train()
    frozen = next(m for m in g.modules() if m is not g)
    frozen.eval()  # a submodule left in eval stays in eval
    modes, state = [m.training for m in g.modules()], {k: v.clone() for k, v in g.state_dict().items()}
    seen = []
    g.register_forward_pre_hook(lambda module, _: seen.append((module.training, torch.is_grad_enabled())))
    SampleGridHandler(str(tmp_path))(trainer)
    assert seen == [(False, False)]
    assert [m.training for m in g.modules()] == modes and not frozen.training
    assert all(torch.equal(state[k], v) for k, v in g.state_dict().items())


@pytest.mark.parametrize("use_ema", [True, False])
def test_ema_generator_used_when_present(tmp_path, use_ema):
    trainer = build_trainer()
    trainer.g_ema = AveragedModel(trainer.g_network, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    calls = {"ema": 0, "g": 0}
    for key, module in (("ema", trainer.g_ema.module), ("g", trainer.g_network)):
        module.register_forward_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))
    SampleGridHandler(str(tmp_path), use_ema=use_ema)(trainer)
    assert calls == ({"ema": 1, "g": 0} if use_ema else {"ema": 0, "g": 1})


def test_tensorboard_image_and_stock_scalars(tmp_path):
    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    stats = TensorBoardStatsHandler(summary_writer=writer, iteration_log=True, epoch_log=False,
                                    output_transform=scalars)
    grid = SampleGridHandler(str(tmp_path / "grids"), interval=1, summary_writer=writer, tag="samples/ema")
    trainer = build_trainer(iterations=2, train_handlers=[stats])
    grid.attach(trainer)
    trainer.run()
    writer.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"g_loss", "d_loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("g_loss")] == [1, 2]
    images = events.Images("samples/ema")
    with Image.open(tmp_path / "grids" / "samples_latest.png") as latest:
        assert [e.step for e in images] == [1, 2] and (images[-1].width, images[-1].height) == latest.size


def test_tensorboard_holds_only_the_computed_scalars(tmp_path):
    """A plain DCGAN run writes no ``gp``, ``grad_norm`` or ``aux_loss_*`` tag (formerly 0.0 and NaN curves)."""
    writer = SummaryWriter(log_dir=str(tmp_path))
    stats = TensorBoardStatsHandler(summary_writer=writer, iteration_log=True, epoch_log=False,
                                    output_transform=scalars)
    trainer = build_trainer(iterations=2, train_handlers=[stats])
    trainer.run()
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == set(trainer.scalar_keys) == {"g_loss", "d_loss", "d_real", "d_fake", "lr_g", "lr_d"}
    assert not tags & {"gp", "grad_norm", "aux_loss_d", "aux_loss_g"}
    assert [e.step for e in events.Scalars("d_loss")] == [1, 2]


def test_only_rank_zero_renders(tmp_path, monkeypatch):
    from medsynth.engines import distributed

    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 1)
    SampleGridHandler(str(tmp_path / "grids"))(build_trainer())
    assert not (tmp_path / "grids").exists()


def test_class_names_must_match_the_classes(tmp_path):
    with pytest.raises(ValueError, match="3 class_names for a generator of 2 classes"):
        SampleGridHandler(str(tmp_path), class_names=["a", "b", "c"])(build_trainer())
