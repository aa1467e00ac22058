"""Conditional GAN trainer on MONAI's ``Trainer``: labels, n_critic fresh batches, AMP, EMA, DiffAugment.

MONAI's ``GanTrainer`` has no labels, no AMP and no resumable state, and its ``d_train_steps`` reuses one batch
(MONAI 1.5, ``monai.engines.GanTrainer``). :class:`ConditionalGanTrainer` covers DCGAN, cDCGAN (projection or concat
discriminator), ACGAN (discriminator returning ``(logits, class_logits)``) and WGAN-GP (``loss="wasserstein"``,
``gradient_penalty=10``, ``n_critic=5``) with one short loop.

**One engine iteration = one generator step**, preceded by ``n_critic`` discriminator steps, each on a fresh real
batch: the first is the batch ignite hands to ``_iteration``, the other ``n_critic - 1`` are pulled from ignite's
own data iterator (``engine._dataloader_iter``), which is restarted when exhausted, as ignite itself does. So the
batches of one iteration are consecutive and distinct, and each is loaded once. ``epoch_length`` (default
``len(loader)``, as in MONAI) counts generator steps, and one engine epoch reads ``n_critic * epoch_length`` real
batches: with ``n_critic=5`` an "epoch" is five passes over the data. Set ``epoch_length`` to
``len(loader) // n_critic`` for one pass per epoch; a distributed sampler then keeps its per-epoch shuffle.

**Events** (MONAI ``IterationEvents``): ``FORWARD_COMPLETED``, ``LOSS_COMPLETED`` and ``BACKWARD_COMPLETED`` fire
once per optimiser step (``n_critic`` discriminator steps, then one generator step); ``engine.state.gan_step`` is
``"discriminator"`` or ``"generator"`` meanwhile, so e.g. a gradient-clipping handler on ``BACKWARD_COMPLETED``
(fired before the optimiser steps) knows which network it is. ``MODEL_COMPLETED`` fires once per iteration, after
the generator step and the EMA update, with ``engine.state.output`` holding the full result (so ``postprocessing``
and ``decollate`` run, unlike in ``GanTrainer``).

**Output**: a dict with the scalars this configuration computes (:attr:`ConditionalGanTrainer.scalar_keys`,
in :data:`SCALAR_KEYS` order) as Python floats (discriminator values are means over the ``n_critic`` steps) plus
``reals`` and ``fakes`` ``(B, C, H, W)``, detached. ``g_loss``, ``d_loss``, ``d_real``, ``d_fake``, ``lr_g`` and
``lr_d`` are always there; ``gp`` and ``grad_norm`` only with a gradient penalty (weight > 0); ``aux_loss_d`` and
``aux_loss_g`` only when the discriminator has an auxiliary class head (returns ``(logits, class_logits)``) and
``aux_weight > 0``. So a plain DCGAN logs no ``gp 0.0`` or ``grad_norm nan``. ``d_loss`` and ``g_loss`` are the
full objectives (adversarial + gradient penalty + AC-GAN term). Keep ``decollate=False`` (the default here) for
``StatsHandler(output_transform=scalars)`` (:func:`scalars`).

**AMP**: forward passes run under ``torch.autocast(device.type, enabled=amp, **amp_kwargs)`` (bfloat16 on CPU);
each optimiser has its own ``torch.amp.GradScaler``, enabled only for ``amp`` on CUDA. The gradient penalty runs
in float32 outside autocast: its double backward through ``autograd.grad`` is where half precision under- and
overflows, and with unscaled float32 inner gradients there is nothing to unscale (PyTorch's AMP recipe scales
and unscales the inner gradients instead). The penalty is added to the loss that the scaler scales.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from monai.engines.workflow import Workflow
from monai.inferers import Inferer, SimpleInferer
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.swa_utils import AveragedModel

from medsynth.losses import (
    DiscriminatorLoss,
    GeneratorLoss,
    GradientPenalty,
    auxiliary_classification_loss,
    check_loss_name,
)

SCALAR_KEYS: tuple[str, ...] = (
    "g_loss", "d_loss", "d_real", "d_fake", "gp", "grad_norm", "aux_loss_d", "aux_loss_g", "lr_g", "lr_d",
)
"""Every scalar name the trainer can output; a given configuration outputs a subset (``scalar_keys``)."""
CLASS_SAMPLINGS: tuple[str, ...] = ("uniform", "minority", "data")
_STATE_KEYS = ("g_network", "g_optimizer", "g_scaler", "g_ema", "d_network", "d_optimizer", "d_scaler")


def scalars(output: Mapping[str, Any]) -> dict[str, float]:
    """The entries of a trainer ``output`` whose key is in :data:`SCALAR_KEYS`, in that order.

    The ``output_transform`` of MONAI's ``StatsHandler`` and ``TensorBoardStatsHandler``: they log exactly the
    scalars the configuration computes (no ``reals``/``fakes`` tensors, no absent keys).
    """
    return {key: output[key] for key in SCALAR_KEYS if key in output}


class ConditionalGanTrainer(Trainer):
    """GAN trainer for labelled batches ``{image_key: (B, C, H, W), label_key: (B,) or (B, 1)}``.

    Args:
        device, max_epochs, train_data_loader, epoch_length, train_handlers, non_blocking, optim_set_to_none,
            decollate, to_kwargs, amp_kwargs: as MONAI's ``SupervisedTrainer`` (``decollate`` defaults to False).
        g_network: ``G(z (B, latent_size), y (B,) | None) -> (B, C, H, W)``.
        d_network: ``D(x, y | None) -> logits (B,)`` or, for ACGAN, ``(logits (B,), class_logits (B, K))``.
        loss: "hinge", "wasserstein", "bce" or "mse" (``medsynth.losses``).
        gradient_penalty: WGAN-GP weight λ on real/fake interpolates (0 = off). A conditional critic gets the
            real labels there.
        n_critic: discriminator steps per generator step, each on a fresh real batch (see the module docstring).
        latent_size: default ``g_network.latent_size``.
        num_classes: default ``g_network.num_classes``; > 0 makes the model conditional (needs >= 2 and labels).
        class_sampling: labels of the fakes: "uniform" over classes, "minority" (``minority_class`` only; a
            conditional model still needs the real labels for D) or "data" (the real batch's labels).
        minority_class: required with ``class_sampling="minority"`` (the bundle takes it from the datalist, where
            the class counts are known; counting labels in batches would drift as batches arrive).
        aux_weight: weight of the AC-GAN cross-entropy, used when D returns a tuple.
        amp: mixed precision (see the module docstring).
        g_ema: ``AveragedModel(g_network, multi_avg_fn=get_ema_multi_avg_fn(0.999))``, updated after each G step
            (``use_buffers=True`` also averages batch-norm statistics).
        augment: ``augment(x (B, C, H, W)) -> (B, C, H, W)`` applied to real and fake images before D (DiffAugment;
            it must be differentiable).
        g_inferer: how the generator is called, ``g_inferer(z, g_network, y)`` (default MONAI ``SimpleInferer``,
            i.e. ``g_network(z, y)``); a bundle's ``train#inferer``.
        image_key, label_key: keys of a dict batch (a tuple/list batch is ``(image, label)``).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        g_network: nn.Module,
        g_optimizer: Optimizer,
        d_network: nn.Module,
        d_optimizer: Optimizer,
        loss: str = "hinge",
        gradient_penalty: float = 0.0,
        n_critic: int = 1,
        latent_size: int | None = None,
        num_classes: int | None = None,
        class_sampling: str = "uniform",
        minority_class: int | None = None,
        aux_weight: float = 1.0,
        amp: bool = False,
        g_ema: AveragedModel | None = None,
        augment: Callable[[Tensor], Tensor] | None = None,
        g_inferer: Inferer | None = None,
        image_key: str = "image",
        label_key: str = "label",
        epoch_length: int | None = None,
        train_handlers: list | None = None,
        non_blocking: bool = False,
        optim_set_to_none: bool = False,
        decollate: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
    ) -> None:
        num_classes = int(getattr(g_network, "num_classes", 0) if num_classes is None else num_classes)
        latent_size = getattr(g_network, "latent_size", None) if latent_size is None else latent_size
        _check_options(loss, class_sampling, n_critic, num_classes, minority_class, latent_size)
        assert latent_size is not None  # _check_options refuses None
        super().__init__(
            device=device, max_epochs=max_epochs, data_loader=train_data_loader, epoch_length=epoch_length,
            non_blocking=non_blocking, handlers=train_handlers, amp=amp, decollate=decollate, to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
        )
        self.g_network, self.g_optimizer, self.g_ema = g_network, g_optimizer, g_ema
        self.d_network, self.d_optimizer = d_network, d_optimizer
        self.d_loss_function, self.g_loss_function = DiscriminatorLoss(loss), GeneratorLoss(loss)
        self.gradient_penalty = GradientPenalty(gradient_penalty) if gradient_penalty > 0 else None
        self.n_critic, self.latent_size, self.num_classes = n_critic, int(latent_size), num_classes
        self.class_sampling, self.minority_class, self.aux_weight = class_sampling, minority_class, aux_weight
        self.augment, self.image_key, self.label_key = augment, image_key, label_key
        self._has_aux_head = _has_class_head(d_network)  # confirmed by the first discriminator output
        self.g_inferer = SimpleInferer() if g_inferer is None else g_inferer
        self.optim_set_to_none = optim_set_to_none
        scaled = amp and self.state.device.type == "cuda"
        self.g_scaler = torch.amp.GradScaler("cuda", enabled=scaled)
        self.d_scaler = torch.amp.GradScaler("cuda", enabled=scaled)
        # on the state, as AdversarialTrainer does, for handlers; not in ``_state_dict_user_keys``, whose
        # load would replace these objects on the state with unpickled copies (checkpoints save their state_dicts)
        for key in _STATE_KEYS:
            setattr(self.state, key, getattr(self, key))
        self.state.gan_step = None

    @property
    def scalar_keys(self) -> tuple[str, ...]:
        """The :data:`SCALAR_KEYS` this configuration outputs (gradient penalty and AC-GAN terms only when on).

        Whether the discriminator has an auxiliary class head is read from its output at the first step; before
        that, from its ``classifier`` attribute (``medsynth.networks`` discriminators built with ``aux_classifier``).
        """
        off = set()
        if self.gradient_penalty is None:
            off |= {"gp", "grad_norm"}
        if not (self._has_aux_head and self.aux_weight > 0):
            off |= {"aux_loss_d", "aux_loss_g"}
        return tuple(key for key in SCALAR_KEYS if key not in off)

    def run(self) -> None:  # type: ignore[override]
        """Run training, skipping ``Trainer.run``'s shared, deprecated ``torch.cuda.amp.GradScaler`` (we keep two)."""
        Workflow.run(self)

    def _iteration(self, engine: ConditionalGanTrainer, batchdata: Any) -> dict[str, Any]:
        """``n_critic`` D steps (the first on ``batchdata``, then fresh batches), one G step, the EMA update."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        engine.g_network.train()
        engine.d_network.train()
        engine.state.output = {}
        d_stats: list[dict[str, float]] = []
        for step in range(engine.n_critic):
            reals, labels = engine._unpack(batchdata if step == 0 else engine._next_batch())
            d_stats.append(engine._critic_step(reals, labels))
        g_stats, fakes = engine._generator_step(reals.shape[0], labels)
        if engine.g_ema is not None:
            engine.g_ema.update_parameters(engine.g_network)
        stats = {key: sum(s[key] for s in d_stats) / len(d_stats) for key in d_stats[0]}
        stats.update(g_stats, lr_g=_lr(engine.g_optimizer), lr_d=_lr(engine.d_optimizer))
        output: dict[str, Any] = {key: stats[key] for key in engine.scalar_keys}  # only what this setup computes
        output.update(reals=reals.detach(), fakes=fakes.detach())
        engine.state.output, engine.state.gan_step = output, None
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    def _critic_step(self, reals: Tensor, labels: Tensor | None) -> dict[str, float]:
        """One discriminator update on ``reals (B, C, H, W)`` and fresh fakes; returns its scalar stats."""
        self.state.gan_step = "discriminator"
        z, fake_labels = self._sample_latents(reals.shape[0], labels)
        with self._autocast():
            with torch.no_grad():
                fakes = self.g_inferer(z, self.g_network, fake_labels)
            reals_in, fakes_in = self._augment(reals), self._augment(fakes.detach())
            real_logits, real_classes = _split(self.d_network(reals_in, labels))
            fake_logits, fake_classes = _split(self.d_network(fakes_in, fake_labels))
            self._has_aux_head = real_classes is not None
            self.fire_event(IterationEvents.FORWARD_COMPLETED)
            adversarial = self.d_loss_function(real_logits.float(), fake_logits.float())
            aux = self._aux_loss(real_classes, labels) + self._aux_loss(fake_classes, fake_labels)
        gp, grad_norm = torch.zeros((), device=reals.device), float("nan")
        if self.gradient_penalty is not None:  # float32, outside autocast (module docstring)
            gp = self.gradient_penalty(self.d_network, reals_in.float(), fakes_in.float(), labels)
            grad_norm = float(self.gradient_penalty.last_grad_norm)
        loss = adversarial + gp + aux
        self.fire_event(IterationEvents.LOSS_COMPLETED)
        self._step(loss, self.d_optimizer, self.d_scaler)
        return {"d_loss": loss.item(), "d_real": real_logits.detach().float().mean().item(),
                "d_fake": fake_logits.detach().float().mean().item(), "gp": float(gp.detach()), "grad_norm": grad_norm,
                "aux_loss_d": float(aux.detach())}

    def _generator_step(self, batch_size: int, labels: Tensor | None) -> tuple[dict[str, float], Tensor]:
        """One generator update on ``batch_size`` fresh latents; returns its stats and the fakes ``(B, C, H, W)``."""
        self.state.gan_step = "generator"
        z, fake_labels = self._sample_latents(batch_size, labels)
        with self._autocast():
            fakes = self.g_inferer(z, self.g_network, fake_labels)
            fake_logits, fake_classes = _split(self.d_network(self._augment(fakes), fake_labels))
            self.fire_event(IterationEvents.FORWARD_COMPLETED)
            aux = self._aux_loss(fake_classes, fake_labels)
            loss = self.g_loss_function(fake_logits.float()) + aux
        self.fire_event(IterationEvents.LOSS_COMPLETED)
        self._step(loss, self.g_optimizer, self.g_scaler)
        return {"g_loss": loss.item(), "aux_loss_g": float(aux.detach())}, fakes

    def _sample_latents(self, batch_size: int, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``z (B, latent_size) ~ N(0, I)`` and fake labels ``(B,)`` per ``class_sampling`` (None if unconditional)."""
        device = self.state.device
        z = torch.randn(batch_size, self.latent_size, device=device)
        if not self.num_classes:
            return z, None
        if self.class_sampling == "uniform":
            return z, torch.randint(0, self.num_classes, (batch_size,), device=device)
        if self.class_sampling == "minority":
            assert self.minority_class is not None  # _check_options: "minority" with classes needs one
            return z, torch.full((batch_size,), int(self.minority_class), dtype=torch.long, device=device)
        return z, labels

    def _step(self, loss: Tensor, optimizer: Optimizer, scaler: torch.amp.GradScaler) -> None:
        optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        scaler.scale(loss).backward()
        self.fire_event(IterationEvents.BACKWARD_COMPLETED)
        scaler.step(optimizer)
        scaler.update()

    def _aux_loss(self, class_logits: Tensor | None, labels: Tensor | None) -> Tensor:
        """AC-GAN term ``aux_weight * CE(class_logits (B, K), labels (B,))``, or 0 without an auxiliary head."""
        if class_logits is None:
            return torch.zeros((), device=self.state.device)
        if labels is None:
            raise ValueError("the discriminator returns class logits (ACGAN) but the model is unconditional: "
                             "set num_classes (or use a generator with num_classes > 0)")
        return self.aux_weight * auxiliary_classification_loss(class_logits.float(), labels)

    def _augment(self, x: Tensor) -> Tensor:
        return x if self.augment is None else self.augment(x)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.state.device.type, enabled=self.amp, **self.amp_kwargs)

    def _next_batch(self) -> Any:
        """The next batch of ignite's own data iterator, restarted (as ignite does) when exhausted.

        Sharing ignite's iterator keeps the ``n_critic`` batches of an iteration consecutive and distinct, and
        loads each batch once; ``GET_BATCH_*`` events fire only for the first. Outside ``run()`` (no ignite
        iterator yet) a private iterator over the loader stands in.
        """
        for _ in range(2):
            if getattr(self, "_dataloader_iter", None) is None:
                self._dataloader_iter = iter(self.data_loader)
            assert self._dataloader_iter is not None  # set just above when it was not
            try:
                return next(self._dataloader_iter)
            except StopIteration:
                self._dataloader_iter = None
        raise RuntimeError("train_data_loader yielded no batch")

    def _unpack(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """Images ``(B, C, H, W)`` on the device, and labels ``(B,)`` long when the model needs them."""
        if isinstance(batch, Mapping):
            images, labels = batch[self.image_key], batch.get(self.label_key)
        else:
            images, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        kwargs = {"device": self.state.device, "non_blocking": self.non_blocking, **self.to_kwargs}
        images = torch.as_tensor(images).to(**kwargs)
        if not self.num_classes:
            return images, None
        if labels is None:
            keys = sorted(batch) if isinstance(batch, Mapping) else f"a {type(batch).__name__} of {len(batch)}"
            raise ValueError(f"the model is conditional (num_classes={self.num_classes}) but the batch has no "
                             f"labels under label_key={self.label_key!r} (batch keys: {keys})")
        return images, torch.as_tensor(labels).to(**kwargs).reshape(-1).long()


def _check_options(loss: str, class_sampling: str, n_critic: int, num_classes: int, minority_class: int | None,
                   latent_size: int | None) -> None:
    """Raise a ValueError naming the first invalid trainer option."""
    check_loss_name(loss)
    if class_sampling not in CLASS_SAMPLINGS:
        raise ValueError(f"unknown class_sampling {class_sampling!r}; choose one of {', '.join(CLASS_SAMPLINGS)}")
    if int(n_critic) != n_critic or n_critic < 1:
        raise ValueError(f"n_critic must be an integer >= 1, got {n_critic}")
    if latent_size is None:
        raise ValueError("latent_size is required when g_network has no latent_size attribute")
    if num_classes == 1 or num_classes < 0:
        raise ValueError(f"a conditional GAN needs num_classes >= 2 (0 = unconditional), got {num_classes}")
    if class_sampling == "minority" and num_classes:
        if minority_class is None or not 0 <= minority_class < num_classes:
            raise ValueError(f"class_sampling='minority' needs minority_class in [0, {num_classes}), "
                             f"got {minority_class}")


def _split(out: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """``(logits, class_logits | None)`` from a discriminator's output."""
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def _has_class_head(d_network: nn.Module) -> bool:
    """Whether a (DDP-wrapped) discriminator has an auxiliary class head, by its ``classifier`` attribute."""
    while isinstance(inner := getattr(d_network, "module", None), nn.Module):
        d_network = inner
    return isinstance(getattr(d_network, "classifier", None), nn.Module)


def _lr(optimizer: Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
