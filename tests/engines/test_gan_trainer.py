"""ConditionalGanTrainer: one loop for DCGAN, cDCGAN, ACGAN and WGAN-GP, on tiny 16 px networks on CPU."""

from __future__ import annotations

import math
import re

import pytest
import torch
from monai.engines.utils import IterationEvents
from monai.handlers import StatsHandler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from medsynth.engines.gan_trainer import SCALAR_KEYS, ConditionalGanTrainer, scalars
from medsynth.networks.dcgan import Discriminator, Generator
from medsynth.networks.wgan import Critic

SIZE, LATENT, BATCH = 16, 8, 4


class CountingLoader:
    """A deterministic loader of ``num_batches`` dict batches that counts the batches it yields."""

    def __init__(self, num_batches: int = 4, num_classes: int = 2, with_labels: bool = True) -> None:
        gen = torch.Generator().manual_seed(123)
        self.batches = []
        for i in range(num_batches):
            batch = {"image": torch.rand(BATCH, 1, SIZE, SIZE, generator=gen) * 2 - 1}
            if with_labels:
                batch["label"] = (torch.arange(BATCH) + i) % max(num_classes, 1)
            self.batches.append(batch)
        self.yielded = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.yielded += 1
            yield batch


def build_trainer(num_classes: int = 2, conditioning: str = "projection", loader: CountingLoader | None = None,
                  d_network: torch.nn.Module | None = None, iterations: int = 1, **kwargs) -> ConditionalGanTrainer:
    """A trainer over tiny networks whose engine epoch is ``iterations`` generator steps."""
    torch.manual_seed(0)
    g = Generator(latent_size=LATENT, image_size=SIZE, channels=1, base_channels=8, num_classes=num_classes)
    if d_network is None:
        d_network = Discriminator(image_size=SIZE, channels=1, base_channels=8, num_classes=num_classes,
                                  conditioning=conditioning if num_classes else "none")
    return ConditionalGanTrainer(
        device="cpu", max_epochs=1, epoch_length=iterations,
        train_data_loader=loader if loader is not None else CountingLoader(num_classes=num_classes),
        g_network=g, g_optimizer=torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999)),
        d_network=d_network, d_optimizer=torch.optim.Adam(d_network.parameters(), 1e-3, betas=(0.5, 0.999)),
        **kwargs,
    )


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def spy_labels(module: torch.nn.Module) -> list[torch.Tensor]:
    """Record the ``y`` that ``module(x, y)`` receives."""
    seen: list[torch.Tensor] = []
    module.register_forward_pre_hook(lambda _, args: seen.append(args[1].clone()))
    return seen


def test_one_iteration_returns_scalars_and_updates_both_networks():
    trainer = build_trainer()
    g_before, d_before = snapshot(trainer.g_network), snapshot(trainer.d_network)
    trainer.run()
    out = trainer.state.output
    computed = ("g_loss", "d_loss", "d_real", "d_fake", "lr_g", "lr_d")  # no gradient penalty, no class head
    assert trainer.scalar_keys == computed and set(SCALAR_KEYS) & set(out) == set(computed)
    assert not {"gp", "grad_norm", "aux_loss_d", "aux_loss_g"} & set(out)
    assert all(isinstance(out[k], float) and math.isfinite(out[k]) for k in computed)
    assert list(scalars(out)) == list(computed)  # the tensors left out, SCALAR_KEYS order
    assert out["lr_g"] == out["lr_d"] == 1e-3
    assert out["reals"].shape == out["fakes"].shape == (BATCH, 1, SIZE, SIZE)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, trainer.g_network.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, trainer.d_network.parameters(), strict=True))
    assert trainer.state.g_network is trainer.g_network and trainer.state.d_scaler is trainer.d_scaler


def test_n_critic_uses_fresh_batches_and_steps_d_n_times():
    loader = CountingLoader(num_batches=4)  # 6 critic batches from 4: the data iterator restarts
    trainer = build_trainer(loader=loader, n_critic=3, iterations=2)
    steps, reals = {"g": 0, "d": 0}, []
    trainer.g_optimizer.register_step_post_hook(lambda *_: steps.__setitem__("g", steps["g"] + 1))
    trainer.d_optimizer.register_step_post_hook(lambda *_: steps.__setitem__("d", steps["d"] + 1))
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: reals.append(e.state.output["reals"]))
    trainer.run()
    assert loader.yielded == 6 and steps == {"g": 2, "d": 6}
    # the last critic batch of each iteration: batches 0, 1, 2 | 3, 0, 1
    assert torch.equal(reals[0], loader.batches[2]["image"]) and torch.equal(reals[1], loader.batches[1]["image"])


@pytest.mark.parametrize("sampling", ["minority", "uniform", "data"])
def test_class_sampling(sampling):
    loader = CountingLoader(num_batches=3, num_classes=3)
    trainer = build_trainer(num_classes=3, loader=loader, iterations=3, class_sampling=sampling, minority_class=2)
    seen = spy_labels(trainer.g_network)
    trainer.run()
    labels = torch.cat(seen)
    assert len(seen) == 6  # one D step and one G step per iteration
    if sampling == "minority":
        assert set(labels.tolist()) == {2}
    elif sampling == "uniform":
        assert set(labels.tolist()) == {0, 1, 2}
    else:
        expected = [b["label"] for b in loader.batches for _ in range(2)]
        assert all(torch.equal(y, e) for y, e in zip(seen, expected, strict=True))


def test_conditional_model_without_labels_names_the_key():
    trainer = build_trainer(loader=CountingLoader(with_labels=False), label_key="label")
    with pytest.raises(ValueError, match="label_key='label'"):
        trainer.run()


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "wgan"}, "unknown loss"), ({"class_sampling": "balanced"}, "unknown class_sampling"),
    ({"n_critic": 0}, "n_critic"), ({"class_sampling": "minority"}, "minority_class"),
])
def test_invalid_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_trainer(**kwargs)


@pytest.mark.parametrize("aux_weight", [1.0, 0.0])
def test_acgan_aux_loss_trains_the_class_head(aux_weight):
    d = Discriminator(image_size=SIZE, channels=1, base_channels=8, num_classes=2, aux_classifier=True)
    trainer = build_trainer(d_network=d, aux_weight=aux_weight)
    head = snapshot(d.classifier)
    trainer.run()
    out = trainer.state.output
    assert (out.get("aux_loss_d", 0.0) > 0) == (out.get("aux_loss_g", 0.0) > 0) == (aux_weight > 0)
    assert ("aux_loss_d" in trainer.scalar_keys) == ("aux_loss_g" in out) == (aux_weight > 0)  # reported when on
    changed = any(not torch.equal(a, b) for a, b in zip(head, d.classifier.parameters(), strict=True))
    assert changed == (aux_weight > 0)  # Adam moves nothing on an all-zero gradient


def test_wgan_gp_reports_penalty_and_gradient_norm():
    critic = Critic(image_size=SIZE, channels=1, base_channels=8, num_classes=2, conditioning="projection")
    trainer = build_trainer(d_network=critic, loss="wasserstein", gradient_penalty=10.0, n_critic=2)
    trainer.run()
    out = trainer.state.output
    assert out["gp"] > 0 and math.isfinite(out["grad_norm"]) and out["grad_norm"] > 0
    assert {"gp", "grad_norm"} <= set(trainer.scalar_keys) and not {"aux_loss_d", "aux_loss_g"} & set(out)


def test_ema_lags_behind_the_generator():
    trainer = build_trainer(iterations=4)
    start = snapshot(trainer.g_network)
    trainer.g_ema = trainer.state.g_ema = AveragedModel(trainer.g_network, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    trainer.run()
    current = snapshot(trainer.g_network)
    ema = snapshot(trainer.g_ema.module)
    distance = lambda a, b: sum((x - y).square().sum() for x, y in zip(a, b, strict=True)).sqrt()  # noqa: E731
    assert distance(ema, current) > 0 and distance(ema, start) > 0
    assert distance(ema, current) < distance(start, current)


def test_stock_stats_handler_and_model_completed_once_per_iteration(capsys):
    handler = StatsHandler(name="medsynth.test_gan", iteration_log=True, epoch_log=False, tag_name="loss",
                           output_transform=scalars)
    trainer = build_trainer(iterations=2, train_handlers=[handler])
    counts = {"model": 0, "backward": 0}
    for key, event in (("model", IterationEvents.MODEL_COMPLETED), ("backward", IterationEvents.BACKWARD_COMPLETED)):
        trainer.add_event_handler(event, lambda _, key=key: counts.__setitem__(key, counts[key] + 1))
    trainer.run()
    assert counts == {"model": 2, "backward": 4}  # one D and one G backward per iteration
    logged = capsys.readouterr()  # StatsHandler prints through its own stream handler
    assert "g_loss: " in logged.out + logged.err and "grad_norm" not in logged.out + logged.err


def test_stats_handler_logs_only_the_computed_scalars(caplog):
    """A plain DCGAN logs no ``gp``, ``grad_norm`` or ``aux_loss_*`` (they were ``0.0000`` and ``nan``)."""
    name = "medsynth.test_gan_scalars"
    handler = StatsHandler(name=name, iteration_log=True, epoch_log=False, output_transform=scalars)
    handler.logger.addHandler(caplog.handler)  # MONAI's get_logger does not propagate to the root logger
    try:
        build_trainer(iterations=2, train_handlers=[handler]).run()
    finally:
        handler.logger.removeHandler(caplog.handler)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == name)
    assert logged.count("g_loss: ") == 2 and logged.count("d_real: ") == 2
    assert not re.search(r"\b(gp|grad_norm|aux_loss_d|aux_loss_g)\b", logged), logged


def test_fixed_seed_runs_are_identical():
    weights = []
    for _ in range(2):
        trainer = build_trainer(iterations=3, n_critic=2)
        trainer.run()
        weights.append(snapshot(trainer.g_network))
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_generator_runs_through_the_inferer():
    """``g_inferer`` (a bundle's ``train#inferer``) is how G is called: once per D step and once per G step."""
    from monai.inferers import SimpleInferer

    class CountingInferer(SimpleInferer):
        calls = 0

        def __call__(self, inputs, network, *args, **kwargs):
            CountingInferer.calls += 1
            assert inputs.shape == (BATCH, LATENT) and args[0].shape == (BATCH,)
            return super().__call__(inputs, network, *args, **kwargs)

    trainer = build_trainer(n_critic=2, g_inferer=CountingInferer())
    trainer.run()
    assert CountingInferer.calls == 3
