"""Full-state, atomic, resumable checkpoints on top of MONAI's ``CheckpointSaver`` and ignite's ``Checkpoint``.

What MONAI/ignite give and what this module adds:

- ignite's ``DiskSaver(atomic=True)`` writes to ``tempfile.NamedTemporaryFile(dir=save_dir)`` (a ``tmpXXXXXXXX``
  file, no ``.pt`` suffix) and ``os.replace``-s it onto the final name, deleting the temp file on any Python
  exception. But MONAI's ``CheckpointSaver`` builds its ``DiskSaver`` with ``atomic=False`` (a comment cites
  file permissions; ignite 0.5 now adds group/other read after the rename), and ignite's ``Checkpoint``
  deletes the oldest file *before* writing the new one when ``n_saved`` is reached. With either, a crash
  mid-write can leave no loadable checkpoint. :class:`AtomicCheckpointSaver` is ``CheckpointSaver`` with the
  atomic write switched on and removals deferred until the new file is in place.
- :class:`RNGState` puts Python, NumPy (legacy global), torch CPU/CUDA and any named ``torch.Generator``
  (a DataLoader's) into a ``save_dict``, so a resumed run draws the same random numbers.
- :func:`full_state` builds the ``save_dict`` from a GAN trainer, :func:`resume` loads it with clear errors,
  :func:`export_generator` writes ``models/model.pt`` (the generator's state dict alone, with any parametrization
  such as spectral norm baked into plain weights by :func:`bake_parametrizations`), and :func:`best_checkpoint`
  finds the best key-metric checkpoint a saver has written.

A process killed by a signal mid-write leaves a ``tmpXXXXXXXX`` file in ``save_dir``; it is never read
(it has no ``.pt`` suffix) and may be deleted by hand.
"""

from __future__ import annotations

import copy
import os
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import torch
from ignite.engine import Engine
from ignite.handlers import Checkpoint
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.handlers import CheckpointSaver
from torch import nn
from torch.nn.utils import parametrize

from medsynth.engines.distributed import is_rank0
from medsynth.errors import InputError
from medsynth.fileio import atomic_write

FULL_STATE_KEYS = ("g_network", "d_network", "g_optimizer", "d_optimizer", "g_scaler", "d_scaler", "g_ema")


class RNGState:
    """Every global random state as a ``state_dict`` entry: Python, NumPy legacy, torch CPU, all CUDA devices.

    ``generators`` names extra ``torch.Generator`` objects to carry (e.g. a sampler's or DiffAugment's).
    For exact resume prefer a DataLoader *without* its own ``generator`` (it then shuffles from the global
    torch RNG): torch's ``RandomSampler`` draws once more from a loader-owned generator when an epoch's
    iterator is exhausted, which an uninterrupted ignite run does at the next epoch's start and a resumed
    run (fresh iterator) does not, so the batch order after resume would differ. States are
    stored as tensors and plain Python values, so the checkpoint loads with ``torch.load(weights_only=True)``.
    CUDA states are restored only where as many CUDA devices are visible as were saved.
    """

    def __init__(self, generators: Mapping[str, torch.Generator] | None = None):
        self.generators = dict(generators or {})

    def state_dict(self) -> dict[str, Any]:
        """Snapshot of all random states (see the class docstring)."""
        np_state = np.random.get_state(legacy=False)
        state = {
            "python": random.getstate(),
            "numpy": {
                "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                "pos": int(np_state["state"]["pos"]),
                "has_gauss": int(np_state["has_gauss"]),
                "gauss": float(np_state["gauss"]),
            },
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generators": {name: gen.get_state() for name, gen in self.generators.items()},
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the states written by :meth:`state_dict`; a named generator missing from ``state`` raises."""
        random.setstate(_as_python_rng_state(state["python"]))
        np_state = state["numpy"]
        key = np.asarray(np_state["key"].cpu().numpy(), dtype=np.uint32)
        np.random.set_state(("MT19937", key, np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
        torch.set_rng_state(state["torch"].cpu())
        cuda = state.get("cuda", [])
        if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        for name, gen in self.generators.items():
            gen.set_state(state["generators"][name].cpu())


def _as_python_rng_state(state: Any) -> tuple:
    """``random.setstate`` needs tuples; a reloaded checkpoint may hold lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


class _DeferredRemoveSaver(BaseSaveHandler):
    """Wraps MONAI's ``DiskSaver``: atomic writes, and old files removed only after the new one is in place."""

    def __init__(self, saver: BaseSaveHandler):
        if not hasattr(saver, "_atomic"):
            raise TypeError(f"expected ignite's DiskSaver (with an `_atomic` switch), got {type(saver).__name__}")
        saver._atomic = True
        self.saver = saver
        self.pending: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        self.saver(checkpoint, filename, metadata)
        for old in self.pending:
            try:
                self.saver.remove(old)
            except FileNotFoundError:
                pass
        self.pending.clear()

    def remove(self, filename: str) -> None:
        # A fixed filename (MONAI's final_filename / key_metric_filename) is overwritten by os.replace.
        if getattr(self.saver, "filename", None) is None:
            self.pending.append(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI ``CheckpointSaver`` (same arguments) whose files are written atomically.

    Each write goes to a temp file in ``save_dir`` and is renamed onto the final name; an older checkpoint
    that ``n_saved`` (or ``save_final``) retires is deleted only after that rename, so an interrupted write
    always leaves the previous checkpoint loadable. Use it from YAML as
    ``_target_: medsynth.engines.checkpoint.AtomicCheckpointSaver``.

    It also keeps ``key_metric_negative_sign`` (which MONAI folds into a closure), so that
    :func:`best_checkpoint` can report the best metric value itself rather than its signed score.

    The key metric may be computed less often than every epoch (FID every ``k`` epochs): MONAI's saver reads
    ``engine.state.metrics[key_metric_name]`` at every ``EPOCH_COMPLETED`` and raises ``KeyError`` before the
    first value exists; this one waits for it. Between evaluations the metric keeps its last value, which
    ignite's ``Checkpoint`` does not save again (it saves only a strictly better score).

    Under ``torch.distributed`` it attaches on rank 0 alone, so every rank may be given the same configuration.
    """

    def __init__(self, save_dir: str, save_dict: dict, **kwargs: Any):
        super().__init__(save_dir, save_dict, **kwargs)
        self.key_metric_negative_sign = bool(kwargs.get("key_metric_negative_sign", False))
        self.key_metric_name = kwargs.get("key_metric_name")
        for ckpt in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if ckpt is not None:
                # ignite infers save_handler as DiskSaver; Checkpoint takes any BaseSaveHandler
                ckpt.save_handler = _DeferredRemoveSaver(ckpt.save_handler)  # type: ignore[assignment]

    def attach(self, engine: Any) -> None:
        """Attach on rank 0 only: one process writes the checkpoints of a distributed run."""
        if is_rank0():
            super().attach(engine)

    def metrics_completed(self, engine: Any) -> None:
        """Save the best checkpoint by the key metric, once the metric has a value (see the class docstring)."""
        name = self.key_metric_name or getattr(engine.state, "key_metric_name", None)
        if name not in engine.state.metrics:
            return
        super().metrics_completed(engine)


def full_state(trainer: Any, *, rng: RNGState | bool = True) -> dict[str, Any]:
    """The ``save_dict`` of a GAN trainer: its networks, optimizers, scalers and EMA, itself, and the RNGs.

    Reads the attributes named in ``FULL_STATE_KEYS`` (``g_network``, ``d_network``, ``g_optimizer``, …) and
    skips any that are missing or None; ``"trainer"`` is the engine (epoch, iteration), ``"rng"`` an
    :class:`RNGState` (pass your own to carry a DataLoader generator, or ``False`` to leave it out).
    """
    state = {key: getattr(trainer, key, None) for key in FULL_STATE_KEYS}
    state = {key: obj for key, obj in state.items() if obj is not None}
    state["trainer"] = trainer
    if rng is not False:
        state["rng"] = RNGState() if rng is True else rng
    return state


def _load_checkpoint(path: str | os.PathLike, map_location: Any) -> Any:
    """``torch.load`` with ``weights_only=True``, turning a missing or unreadable file into ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, … for bad files
        raise InputError(path, f"not a medsynth checkpoint or truncated ({type(e).__name__}: {e})") from e


def resume(
    path: str | os.PathLike, save_dict: Mapping[str, Any], *, map_location: Any = "cpu", strict: bool = True
) -> list[str]:
    """Load every object of ``save_dict`` from the full checkpoint at ``path``; return the keys loaded.

    A thin wrapper over ``ignite.handlers.Checkpoint.load_objects`` (which unwraps DDP), applied key by key so
    an error names the entry. ``strict=False`` is passed to ``nn.Module.load_state_dict`` and also skips (with a
    warning) entries the checkpoint lacks; with ``strict=True`` they raise :class:`InputError` listing them.
    A single-entry ``save_dict`` also loads an unnested checkpoint (ignite saves those without the key).

    An ignite engine keeps its own ``max_epochs`` (the configured one, not the stopped run's, as MONAI's
    ``CheckpointLoader`` does), so a run stopped at epoch 10 of 10 continues to ``max_epochs=20``; a checkpoint
    already past ``max_epochs`` raises :class:`InputError`.
    """
    ckpt = _load_checkpoint(path, map_location)
    engines = {key: obj for key, obj in save_dict.items() if isinstance(obj, Engine)}
    max_epochs = {key: engine.state.max_epochs for key, engine in engines.items()}
    if len(save_dict) == 1 and (not isinstance(ckpt, Mapping) or next(iter(save_dict)) not in ckpt):
        Checkpoint.load_objects(to_load=save_dict, checkpoint=ckpt, strict=strict)
        return list(save_dict)
    if not isinstance(ckpt, Mapping):
        raise InputError(path, f"not a full-state checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    missing = [key for key in save_dict if key not in ckpt]
    if missing and strict:
        raise InputError(path, f"checkpoint lacks {missing} (it has {sorted(ckpt)})")
    if missing:
        warnings.warn(f"{path}: checkpoint lacks {missing}; those objects keep their current state", stacklevel=2)
    loaded = [key for key in save_dict if key in ckpt]
    for key in loaded:
        try:
            Checkpoint.load_objects(to_load={key: save_dict[key]}, checkpoint={key: ckpt[key]}, strict=strict)
        except (RuntimeError, KeyError, ValueError) as e:
            raise InputError(path, f"entry {key!r} does not fit: {e}") from e
    for key, engine in engines.items():
        if key in loaded and (limit := max_epochs[key]) is not None:
            if engine.state.epoch > limit:
                raise InputError(path, f"the checkpoint is at epoch {engine.state.epoch}, past max_epochs "
                                       f"{max_epochs[key]}: raise max_epochs to continue training")
            engine.state.max_epochs = max_epochs[key]
    return loaded


class BestCheckpoint(NamedTuple):
    """The best key-metric checkpoint of a saver: its file and the metric value (None where the sign is unknown)."""

    path: Path
    metric: float | None


def best_checkpoint(saver: CheckpointSaver) -> BestCheckpoint | None:
    """The best checkpoint ``saver`` (built with ``save_key_metric=True``) has written, or None if none yet.

    Read from the saver's own record (ignite ``Checkpoint._saved``, kept sorted by score, best last; restored by
    ``load_state_dict`` with ``key_metric_save_state=True``), so it is the file the saver kept, also under a fixed
    ``key_metric_filename``. ``metric`` is the value of ``engine.state.metrics[key_metric_name]`` it was saved at:
    known for an :class:`AtomicCheckpointSaver`, None for MONAI's own saver (its score may be negated).
    """
    ckpt = getattr(saver, "_key_metric_checkpoint", None)
    if ckpt is None or not ckpt._saved:
        return None
    item = ckpt._saved[-1]
    disk_saver = getattr(ckpt.save_handler, "saver", ckpt.save_handler)  # under _DeferredRemoveSaver
    name = getattr(disk_saver, "filename", None) or item.filename  # MONAI's fixed key_metric_filename wins
    sign = getattr(saver, "key_metric_negative_sign", None)
    metric = None if sign is None else float(-item.priority if sign else item.priority)
    return BestCheckpoint(Path(saver.save_dir) / name, metric)


def bake_parametrizations(module: nn.Module) -> nn.Module:
    """Replace every parametrized tensor of ``module`` (and its submodules) by its current value; in place.

    Spectral norm (``torch.nn.utils.parametrizations.spectral_norm``) and weight norm store
    ``parametrizations.weight.original`` (plus ``_u``/``_v`` buffers) instead of ``weight``, so their state dict
    does not load into the same network built without them, and the network cannot be TorchScript-scripted.
    Baking leaves a plain ``weight`` equal to what the parametrization computes **in eval mode** (spectral norm
    then uses its stored power-iteration vectors without updating them), so the baked network's eval-mode
    outputs equal the original's. Training flags are restored afterwards. Returns ``module``.

    Safe on a deep copy: torch gives a parametrized module a generated class (``ParametrizedLinear``) that
    ``copy.deepcopy`` (and ``AveragedModel``) share between copies, and ``remove_parametrizations`` deletes the
    ``weight`` property from that class, which would break every other copy; each module baked here first gets
    a private copy of its class.
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            for sub in list(module.modules()):
                if parametrize.is_parametrized(sub):
                    _own_class(sub)
                    # parametrizations: the ModuleDict torch.nn.utils.parametrize adds at runtime
                    for name in list(cast(nn.ModuleDict, sub.parametrizations).keys()):
                        parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
    finally:
        for sub, training in modes:
            sub.training = training
    return module


def _own_class(module: nn.Module) -> None:
    """Give ``module`` its own copy of its (generated, possibly shared) class, same name, bases and attributes."""
    cls = module.__class__
    namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, namespace)


def unwrap_network(obj: Any) -> Any:
    """Strip DDP/DataParallel/AveragedModel wrappers (all keep the network in ``.module``)."""
    while isinstance(obj, nn.Module) and isinstance(getattr(obj, "module", None), nn.Module):
        obj = obj.module
    return obj


def _strip_module_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """A saved ``AveragedModel`` (or DDP) state dict has ``module.*`` keys and ``n_averaged``; keep the network's."""
    keys = [k for k in state if k != "n_averaged"]
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module.") :]: state[k] for k in keys}
    return dict(state)


def _generator_state(source: Any, key: str, ema_key: str, use_ema: bool, like: nn.Module | None) -> dict[str, Any]:
    """The generator's baked CPU state dict from a module, a ``save_dict``/loaded checkpoint, or a checkpoint path."""
    if isinstance(source, (str, os.PathLike)):
        source = _load_checkpoint(source, "cpu")
    if isinstance(source, Mapping) and (key in source or ema_key in source):
        source = source[ema_key] if use_ema and source.get(ema_key) is not None else source[key]
    if isinstance(source, nn.Module):
        module = unwrap_network(source)
        if any(parametrize.is_parametrized(m) for m in module.modules()):
            module = bake_parametrizations(copy.deepcopy(module))  # the caller's network keeps its parametrizations
        state = module.state_dict()
    elif isinstance(source, Mapping):
        state = _strip_module_prefix(source)
        if like is not None:
            module = copy.deepcopy(unwrap_network(like))
            try:
                module.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"the generator state does not fit `like` ({type(module).__name__}): {e}") from e
            state = bake_parametrizations(module).state_dict()
    else:
        raise TypeError(f"cannot find a generator under {key!r}/{ema_key!r} in a {type(source).__name__}")
    return {name: value.detach().cpu() if isinstance(value, torch.Tensor) else value for name, value in state.items()}


def export_generator(
    checkpoint_or_module: Any,
    path: str | os.PathLike,
    key: str = "g_network",
    *,
    ema_key: str = "g_ema",
    use_ema: bool = True,
    like: nn.Module | None = None,
) -> Path:
    """Write the generator's state dict alone to ``path`` (``models/model.pt``), atomically; return the path.

    ``checkpoint_or_module`` is a generator module, a ``save_dict``, a loaded checkpoint dict, or a checkpoint
    path. From a dict, the EMA generator (``ema_key``) is exported when present and ``use_ema`` (the usual
    choice for sampling), else the raw one (``key``). DDP and ``AveragedModel`` wrappers are removed, so the
    file loads into a bare generator and ``python -m monai.bundle ckpt_export`` needs no ``--key_in_ckpt``.
    Tensors are written on the CPU.

    Parametrizations (spectral norm) are baked into plain weights (:func:`bake_parametrizations`, on a copy), so
    the file loads into the generator built without them (``spectral_norm=False``) and that one scripts. That
    needs the architecture: it is there when a module is given (directly or in a ``save_dict``); for a state dict
    (a checkpoint file or a loaded one) pass ``like``, a generator of the same architecture (e.g. the trainer's;
    it is deep-copied, not changed), else the state dict is written as it is.
    """
    state = _generator_state(checkpoint_or_module, key, ema_key, use_ema, like)
    return atomic_write(path, lambda tmp: torch.save(state, tmp))
