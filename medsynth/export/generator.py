"""The generator's sidecar: ``models/model.pt.json``, what inference needs to rebuild ``models/model.pt``.

Training writes it beside the weights (:class:`~medsynth.engines.export_handler.GeneratorExportHandler`), so
``inference.yaml`` repeats no size and cannot disagree with the trained network::

    {"network": {"_target_": "medsynth.networks.dcgan.Generator", "latent_size": 128, "image_size": 64, ...},
     "bundle": "cdcgan", "version": "0.2.0", "classes": ["benign", "malignant"], "conditional": true,
     "generated_classes": [0, 1], "datalist": "/abs/path/datalist.json"}

``network`` holds the constructor's arguments (the bundle's ``generator_factory``); ``classes`` the datalist's
class names in label order; ``generated_classes`` the labels the generator draws (all of them for a conditional
generator, the one trained class otherwise); ``datalist`` the datalist training read, the default for inference.
Only classes of :mod:`medsynth.networks` are rebuilt from a sidecar (a JSON file names no arbitrary code to run).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medsynth.errors import InputError

NETWORK_PACKAGE = "medsynth.networks."


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``<model_path>.json``: ``models/model.pt`` -> ``models/model.pt.json``."""
    return Path(str(model_path) + ".json")


@dataclass(frozen=True)
class GeneratorInfo:
    """A sidecar's content (see the module docstring)."""

    network: dict[str, Any]
    classes: list[str]
    generated_classes: list[int]
    conditional: bool
    bundle: str | None = None
    version: str | None = None
    datalist: str | None = None

    @property
    def latent_size(self) -> int:
        return int(self.network["latent_size"])

    @property
    def image_size(self) -> int:
        return int(self.network["image_size"])

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "bundle": self.bundle, "version": self.version, "classes": self.classes,
                "conditional": self.conditional, "generated_classes": self.generated_classes,
                "datalist": self.datalist}


def network_spec(factory: functools.partial | nn.Module | dict) -> dict[str, Any]:
    """``{"_target_": dotted class name, **constructor arguments}`` from a bundle's ``_mode_: callable`` factory."""
    if isinstance(factory, dict):
        return dict(factory)
    if not isinstance(factory, functools.partial):
        raise TypeError(f"expected the generator factory (a functools.partial), got {type(factory).__name__}")
    target = f"{factory.func.__module__}.{factory.func.__qualname__}"
    return {"_target_": target, **{k: _plain(v) for k, v in factory.keywords.items()}}


def _plain(value: Any) -> Any:
    """JSON-ready: tuples become lists, everything else must already be JSON (ints, floats, strings, None)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"generator argument {value!r} ({type(value).__name__}) cannot be written to the sidecar")


def generator_info(factory: functools.partial | dict, data: Any, *, conditional: bool, bundle: str | None = None,
                   version: str | None = None) -> GeneratorInfo:
    """The sidecar of a generator trained on ``data`` (a :class:`~medsynth.data.training.TrainingData`)."""
    generated = list(range(data.num_classes)) if conditional else [int(data.train_class)]
    network = network_spec(factory)
    if network.get("spectral_norm"):
        network["spectral_norm"] = False  # model.pt holds it baked into plain weights (export_generator)
    return GeneratorInfo(network=network, classes=list(data.classes), generated_classes=generated,
                         conditional=bool(conditional), bundle=bundle, version=version,
                         datalist=None if data.path is None else str(Path(data.path).resolve()))


def read_generator_info(model_path: str | os.PathLike) -> GeneratorInfo:
    """Read ``<model_path>.json``; a missing or malformed sidecar is an :class:`InputError` naming the file."""
    path = sidecar_path(model_path)
    if not path.is_file():
        raise InputError(path, f"not found: the generator's sidecar, written beside {Path(model_path).name} by "
                               "train.yaml; train the bundle first, or pass --model_path of a trained generator")
    try:
        raw = json.loads(path.read_text())
        network = dict(raw["network"])
        target = network["_target_"]
        info = GeneratorInfo(network=network, classes=[str(c) for c in raw["classes"]],
                             generated_classes=[int(k) for k in raw["generated_classes"]],
                             conditional=bool(raw["conditional"]), bundle=raw.get("bundle"),
                             version=raw.get("version"), datalist=raw.get("datalist"))
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise InputError(path, f"not a generator sidecar ({type(error).__name__}: {error})") from None
    if not isinstance(target, str) or not target.startswith(NETWORK_PACKAGE):
        raise InputError(path, f"network _target_ {target!r} is not a class of {NETWORK_PACKAGE.rstrip('.')}")
    return info


def build_generator(info: GeneratorInfo) -> nn.Module:
    """The generator the sidecar describes, freshly initialised (load ``model.pt`` into it)."""
    kwargs = dict(info.network)
    module_name, _, class_name = kwargs.pop("_target_").rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**kwargs)


def check_generator_classes(info: GeneratorInfo, classes: list[str], model_path: str | os.PathLike) -> None:
    """Refuse a datalist whose class names (in label order) differ from those the generator was trained on."""
    if list(classes) != list(info.classes):
        raise InputError(sidecar_path(model_path), f"the generator was trained on classes {info.classes}, but the "
                                                   f"datalist has {list(classes)}; pass the datalist it was "
                                                   "trained on (--datalist)")
