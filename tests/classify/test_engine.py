"""One classifier stage on MONAI's engines: optimisers, class weights, oversampling, freeze schedule, best epoch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medsynth.classify.engine import (
    KeepBest,
    class_weights,
    new_epoch_per_pass,
    optimizer_factory,
    predict,
    train_stage,
    training_loader,
)
from medsynth.networks.classifiers import classifier, head_parameters
from tests.helpers import FakeTTY


def _items(n: int, positives: int, seed: int = 0) -> list[dict]:
    """Grey 32 px images whose class is the brightness of a centre square: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        label = int(i < positives)
        image = rng.normal(0.0, 0.1, (1, 32, 32)).astype(np.float32)
        image[:, 12:20, 12:20] += 1.0 if label else -1.0
        items.append({"image": torch.from_numpy(image), "label": label})
    return items


def test_optimizers_are_adam_or_nesterov_sgd():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = optimizer_factory("sgd", lr=1e-3, momentum=0.9, nesterov=True)(params, 0.1)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9 and sgd.defaults["lr"] == pytest.approx(1e-4)
    assert isinstance(optimizer_factory("adam", lr=2e-3)(params), torch.optim.Adam)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose from adam, sgd"):
        optimizer_factory("rmsprop")


def test_class_weights_count_every_class_equally():
    # N / (K n_c): 8 / (2 * 6) and 8 / (2 * 2); weighted counts 6 * 2/3 = 2 * 2 = 4
    torch.testing.assert_close(class_weights([0] * 6 + [1] * 2, 2), torch.tensor([2 / 3, 2.0]))
    # an absent class gets weight 0 instead of a division by zero
    torch.testing.assert_close(class_weights([0, 0, 2, 2], 3), torch.tensor([1 / 1.5, 0.0, 1 / 1.5]))


def test_oversampling_draws_the_classes_equally_often_and_is_seeded():
    items = _items(100, 10)
    labels = [it["label"] for it in items]

    def drawn(seed: int) -> np.ndarray:
        loader = training_loader(items, labels, 10, oversample=True, seed=seed)
        return np.concatenate([b["label"].numpy() for _ in range(20) for b in loader])

    a = drawn(0)
    assert abs(a.mean() - 0.5) < 0.05  # 10 % positives in the data, half of the draws
    np.testing.assert_array_equal(a, drawn(0))
    assert not np.array_equal(a, drawn(1))
    plain = training_loader(items, labels, 10, oversample=False, seed=0)
    assert sum(len(b["label"]) for b in plain) == 100  # a permutation, every item once


def test_freeze_epochs_train_the_head_alone_first():
    torch.manual_seed(0)
    net = classifier("fracture_cnn", in_channels=1, image_size=32)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    items = _items(32, 16)
    loader = DataLoader(items, batch_size=8, shuffle=True)
    val = DataLoader(_items(16, 8, seed=1), batch_size=16)
    net, info = train_stage(net, loader, val, num_classes=2, optimizer=optimizer_factory("adam", lr=1e-2),
                            loss_function=torch.nn.CrossEntropyLoss(), max_epochs=2, freeze_epochs=2, patience=5)
    head = {id(p) for p in head_parameters(net)}
    named = dict(net.named_parameters())
    for name, p in named.items():
        changed = not torch.equal(p.detach(), before[name])
        assert changed == (id(p) in head), f"{name}: {'changed' if changed else 'unchanged'}"
    assert all(p.requires_grad for p in net.parameters()), "the backbone is trainable again afterwards"
    assert info["epochs"] == 2


def test_early_stopping_and_the_best_epoch_is_what_comes_back():
    torch.manual_seed(0)
    net = classifier("fracture_cnn", in_channels=1, image_size=32, dropout=0.0)
    loader = DataLoader(_items(32, 16), batch_size=8, shuffle=True)
    val = DataLoader(_items(16, 8, seed=1), batch_size=16)
    snapshots = {}

    class Spy(KeepBest):
        def _check(self, evaluator, epoch):
            super()._check(evaluator, epoch)
            snapshots[epoch] = (evaluator.state.metrics["val_auc"], {k: v.clone() for k, v in
                                                                     net.state_dict().items()})

    import medsynth.classify.engine as engine

    original = engine.KeepBest
    engine.KeepBest = Spy
    try:
        net, info = train_stage(net, loader, val, num_classes=2, optimizer=optimizer_factory("adam", lr=1e-2),
                                loss_function=torch.nn.CrossEntropyLoss(), max_epochs=30, patience=2)
    finally:
        engine.KeepBest = original
    aucs = {e: s[0] for e, s in snapshots.items()}
    best = max(aucs, key=lambda e: (aucs[e], -e))  # the first epoch reaching the maximum
    assert info["best_epoch"] == best and info["best_metric"] == pytest.approx(aucs[best])
    # stopped `patience` epochs after the last improvement (ignite's EarlyStopping: no strict gain = no improvement)
    assert info["epochs"] == min(30, best + 2) == max(aucs)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshots[best][1][k])
    probs, labels = predict(net, val)
    assert probs.shape == (16, 2) and np.allclose(probs.sum(1), 1) and labels.tolist() == [1] * 8 + [0] * 8



@pytest.mark.parametrize("rank", ["0", "1"])
def test_epoch_progress_bar_on_a_terminal_rank0_only(monkeypatch, rank):
    """Each stage's epochs show ignite's bar (with its time estimate) on rank 0's terminal; other ranks stay quiet."""
    import sys

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setenv("RANK", rank)
    torch.manual_seed(0)
    loader = DataLoader(_items(16, 8), batch_size=8)
    val = DataLoader(_items(8, 4, seed=1), batch_size=8)
    train_stage(classifier("fracture_cnn", in_channels=1, image_size=32), loader, val, num_classes=2,
                optimizer=optimizer_factory("adam", lr=1e-2), loss_function=torch.nn.CrossEntropyLoss(), max_epochs=2,
                patience=5)
    assert ("Epoch [2/2]" in tty.getvalue() and "<" in tty.getvalue()) == (rank == "0"), tty.getvalue()[-300:]


def _counting_engines(monkeypatch) -> list[int]:
    """Wrap engine._engines so that an ignite handler counts each trainer's iterations per epoch."""
    from ignite.engine import Events

    import medsynth.classify.engine as engine

    per_epoch: list[int] = []
    original = engine._engines

    def counting(*args, **kwargs):
        trainer, evaluator = original(*args, **kwargs)
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: per_epoch.append(0))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: per_epoch.__setitem__(-1, per_epoch[-1] + 1))
        return trainer, evaluator

    monkeypatch.setattr(engine, "_engines", counting)
    return per_epoch


@pytest.mark.parametrize("oversample", [False, True])
@pytest.mark.parametrize("epoch_length", [None, 3, 12])
def test_epoch_length_is_the_iterations_of_every_epoch(monkeypatch, oversample, epoch_length):
    """12 steps over a 5-batch loader restart it within the epoch (ignite's Engine does); 3 carry the pass on."""
    per_epoch = _counting_engines(monkeypatch)
    items = _items(40, 10)
    loader = training_loader(items, [it["label"] for it in items], 8, oversample=oversample, seed=0)
    assert len(loader) == 5
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Data iterator can not provide data anymore")
        _, info = train_stage(classifier("fracture_cnn", in_channels=1, image_size=32),
                              loader, DataLoader(_items(8, 4, seed=1), batch_size=8), num_classes=2,
                              optimizer=optimizer_factory("adam", lr=1e-3), loss_function=torch.nn.CrossEntropyLoss(),
                              max_epochs=2, patience=5, freeze_epochs=1, epoch_length=epoch_length)
    steps = epoch_length or 5
    assert per_epoch == [steps, steps]  # one epoch head alone, one all layers: each its own trainer
    assert info["steps_per_epoch"] == steps and info["optimizer_steps"] == 2 * steps and info["epochs"] == 2


def test_a_distributed_sampler_gets_a_new_epoch_for_every_pass(monkeypatch):
    """The runner's hook gives every pass its own sampler epoch, also the passes within one long epoch (MONAI's
    trainer alone sets the epoch number at each epoch start, which would repeat the orders of earlier passes)."""
    from torch.utils.data.distributed import DistributedSampler

    per_epoch = _counting_engines(monkeypatch)
    passes: list[tuple[int, list[int]]] = []

    class Recording(DistributedSampler):
        def __iter__(self):
            order = list(super().__iter__())
            passes.append((self.epoch, order))
            return iter(order)

    items = _items(40, 20)
    sampler = Recording(items, num_replicas=1, rank=0, shuffle=True, seed=0)
    loader = DataLoader(items, batch_size=8, sampler=sampler, drop_last=True)
    torch.manual_seed(0)
    _, info = train_stage(classifier("fracture_cnn", in_channels=1, image_size=32), loader,
                          DataLoader(_items(8, 4, seed=1), batch_size=8), num_classes=2,
                          optimizer=optimizer_factory("adam", lr=1e-3), loss_function=torch.nn.CrossEntropyLoss(),
                          max_epochs=3, patience=5, epoch_length=12, freeze_epochs=1,
                          epoch_hook=new_epoch_per_pass(sampler))
    assert per_epoch == [12, 12, 12] and info["optimizer_steps"] == 36
    # a 5-batch loader: the head-only trainer reads 3 passes (the last one begun), the next 24 steps 5 more; each
    # pass with its own sampler epoch and order
    assert [epoch for epoch, _ in passes] == list(range(1, 9))
    assert len({tuple(order) for _, order in passes}) == 8
