"""Image classifiers for the augmentation experiments, built by name: ``classifier("resnet18", in_channels=1)``.

Every network maps ``(B, in_channels, H, W)`` to logits ``(B, num_classes)`` (no softmax: we train every network,
the two small study CNNs included, with softmax cross-entropy). Bundle YAML references
``medsynth.networks.classifiers.classifier``; :data:`NETWORKS` lists the names:

    name               built by                                  first conv             head (replaced)
    resnet18/50        torchvision, weights=None                 conv1                  fc
    alexnet            torchvision (needs >= 63 px)              features.0             classifier.6
    efficientnet_b0-b5 torchvision                               features.0.0           classifier.1
    inception_v3       torchvision, aux_logits=False (>= 75 px)  Conv2d_1a_3x3.conv     fc
    densenet121        monai DenseNet121(spatial_dims=2) (>= 29) features.conv0         class_layers.out
    liver_cnn          :class:`LiverLesionCNN` (Frid-Adar 2018)  features.0             head
    fracture_cnn       :class:`BoneFractureCNN` (bone fracture)  features.0             head

The head's name is stored on the model as ``model.head_name``, so :func:`head_parameters` and
:func:`set_backbone_trainable` (the ISIC study's schedule: train the new head on a frozen backbone, then
fine-tune all layers) work for every network. ``dropout`` sets the dropout before the head (AlexNet: both of
its classifier dropouts); networks without one (ResNet, DenseNet) then get ``head = Sequential(Dropout, Linear)``.

Another ``in_channels`` than 3 replaces the first convolution of a torchvision network. With random weights the
new filters copy input channel 0 of the network's own initialisation (cycling over R, G, B for more than 3),
which keeps torchvision's fan-out (ResNet, EfficientNet) and fixed-std (Inception) schemes. With ImageNet
weights a 1-channel filter is the **sum** of the pretrained R, G and B filters, so a gray image ``g`` gives the
response the RGB network gives ``(g, g, g)``. Nothing here normalises intensities (no ImageNet mean/std, and
Inception's ``transform_input`` stays off): the data pipeline owns them.

Pretrained weights never download. ``pretrained=True`` (or any ``weights``) loads, in this order:

1. ``weights``: a state-dict file (torchvision's checkpoint files are state dicts; a dict holding one under
   ``state_dict``, ``model`` or ``network`` and a ``module.`` prefix are unwrapped), or a folder holding
   torchvision's file. A missing explicit path is an error, not a fallback;
2. ``torch.hub.get_dir()/checkpoints/<torchvision's file name>`` (e.g. ``resnet18-f37072fd.pth``), where
   ``torchvision.models.resnet18(weights="IMAGENET1K_V1")`` caches it. DenseNet121 reads torchvision's
   ``densenet121-a639ec97.pth`` with MONAI's key renaming (which is what ``DenseNet121(pretrained=True)`` would
   download); the two study CNNs have no published weights, so they need ``weights``.

Everything but the head loads strictly (Inception's auxiliary classifier is skipped); a file whose keys or
shapes do not match raises :class:`~medsynth.errors.InputError` naming it, a missing one
:class:`~medsynth.metrics.inception.MissingWeightsError` naming the paths tried and how to get the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import cast

import torch
from torch import nn

from medsynth.errors import InputError, MissingWeightsError
from medsynth.networks.dcgan import check_option

TORCHVISION = ("resnet18", "resnet50", "alexnet", *(f"efficientnet_b{i}" for i in range(6)), "inception_v3")
NETWORKS: tuple[str, ...] = (*TORCHVISION, "densenet121", "liver_cnn", "fracture_cnn")
FIRST_CONV = {"resnet18": "conv1", "resnet50": "conv1", "alexnet": "features.0", "inception_v3": "Conv2d_1a_3x3.conv",
              "densenet121": "features.conv0", **{f"efficientnet_b{i}": "features.0.0" for i in range(6)}}
HEAD = {"resnet18": "fc", "resnet50": "fc", "alexnet": "classifier.6", "inception_v3": "fc",
        "densenet121": "class_layers.out", **{f"efficientnet_b{i}": "classifier.1" for i in range(6)}}
MIN_IMAGE_SIZE = {"alexnet": 63, "inception_v3": 75, "densenet121": 29}  # smaller inputs shrink to nothing
OWN_DROPOUT = ("alexnet", "inception_v3", *(f"efficientnet_b{i}" for i in range(6)))
SKIPPED_KEYS = {"inception_v3": ("AuxLogits.",)}  # in torchvision's file, not in our aux_logits=False network


class LiverLesionCNN(nn.Module):
    """Frid-Adar et al. (2018) liver-lesion CNN: ``(B, in_channels, S, S) -> (B, num_classes)``, S = 64 there.

    What Frid-Adar et al. 2018 give: 64x64 ROIs; three pairs of a convolution followed by max pooling; two dense
    layers ending in softmax; ReLU; one dropout layer, p = 0.5. Filter counts, kernel sizes and the hidden dense
    width are not in the paper's text (its figure is missing), so these are ours::

        conv 5x5 (same padding) 32 -> ReLU -> max-pool 2x2      (B, 32, S/2, S/2)
        conv 5x5 64 -> ReLU -> max-pool 2x2                     (B, 64, S/4, S/4)
        conv 5x5 128 -> ReLU -> max-pool 2x2                    (B, 128, S/8, S/8)
        flatten -> dense 256 -> ReLU -> dropout(0.5)            (B, 256)   (width and dropout placement: ours)
        dense num_classes (the head; softmax lives in the loss)

    ``image_size`` (>= 8) sets the first dense layer's input, ``128 * (S // 8)**2``.
    """

    head_name = "head"

    def __init__(self, in_channels: int = 1, num_classes: int = 3, image_size: int = 64, dropout: float = 0.5,
                 channels: tuple[int, ...] = (32, 64, 128), kernel_size: int = 5, hidden: int = 256) -> None:
        super().__init__()
        if image_size < 2 ** len(channels):
            raise ValueError(f"liver_cnn needs image_size >= {2 ** len(channels)}, got {image_size}")
        layers, width = [], in_channels
        for out in channels:
            layers += [nn.Conv2d(width, out, kernel_size, padding=kernel_size // 2), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(channels)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, hidden), nn.ReLU(),
                                        nn.Dropout(dropout))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier(self.features(x)))


class BoneFractureCNN(nn.Module):
    """The bone-fracture study's small CNN (from its Keras summary): ``(B, in_channels, S, S) -> (B, num_classes)``.

    Derived from the summary's output shapes and parameter counts (Keras defaults: 'valid' padding, pooling
    stride = pool size)::

        Keras layer       output      params  derivation
        conv2d            21x21x32    320     32 * (3*3*C + 1) = 320 -> C = 1, kernel 3x3; 21 = (S - 3) // 3 + 1
                                              -> stride 3 and S in 63..65: 1 x 64 x 64 input (the study's GAN size)
        batch norm        21x21x32    128     gamma, beta + moving mean, variance (PyTorch: 64 params + buffers)
        conv2d            7x7x16      4624    16 * (3*3*32 + 1) -> kernel 3x3; 7 = (21 - 3) // 3 + 1 -> stride 3
        max-pooling       2x2x16      0       2 = (7 - 3) // 3 + 1 -> pool 3x3, stride 3 (pool 2 would give 3)
        batch norm        2x2x16      64
        dropout, flatten  64          0
        dense             128         8320    128 * (64 + 1)
        dropout           128         0
        dense             1           129     here num_classes outputs (258 for 2): softmax cross-entropy,
                                              not the study's sigmoid unit

    Ours, as the summary does not show them: ReLU after each convolution (before its batch norm, as Keras'
    ``Conv2D(activation="relu")`` is) and after the 128-unit dense layer; PyTorch's batch-norm defaults; dropout
    0.25 after the pooled block and 0.5 after the dense layer (those of Keras' MNIST CNN example, which this
    stack follows). ``dropout`` sets both. ``image_size`` (>= 27) sets the dense input, ``16 * p**2`` with
    ``p = (((S - 3) // 3 - 2) // 3 - 2) // 3 + 1`` read off the layers (2 for 64 px).
    """

    head_name = "head"

    def __init__(self, in_channels: int = 1, num_classes: int = 2, image_size: int = 64,
                 dropout: float | None = None) -> None:
        super().__init__()
        side = image_size
        for _ in range(3):  # two stride-3 convolutions and the pool, all 3x3 'valid'
            side = (side - 3) // 3 + 1
        if side < 1:
            raise ValueError(f"fracture_cnn needs image_size >= 27, got {image_size}")
        conv_dropout, dense_dropout = (0.25, 0.5) if dropout is None else (dropout, dropout)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, stride=3), nn.ReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 16, 3, stride=3), nn.ReLU(), nn.MaxPool2d(3), nn.BatchNorm2d(16), nn.Dropout(conv_dropout),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * side * side, 128), nn.ReLU(),
                                        nn.Dropout(dense_dropout))
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier(self.features(x)))


def classifier(name: str, in_channels: int = 3, num_classes: int = 2, *, pretrained: bool = False,
               weights: str | os.PathLike | None = None, image_size: int = 64,
               dropout: float | None = None) -> nn.Module:
    """The network ``name`` (one of :data:`NETWORKS`): ``(B, in_channels, S, S) -> (B, num_classes)`` logits.

    ``pretrained`` loads ImageNet weights from the torch hub cache, or from ``weights`` (a given ``weights``
    implies ``pretrained``); see the module docstring. ``image_size`` sizes the study CNNs' dense layers and is
    checked against each network's minimum. ``dropout`` None keeps each network's default. The returned model
    carries ``head_name``, the dotted name of its final layer.
    """
    name = cast(str, check_option("network", name, NETWORKS))  # never None: NETWORKS holds no None
    minimum = MIN_IMAGE_SIZE.get(name, 1)
    if image_size < minimum:
        raise ValueError(f"{name} needs image_size >= {minimum} (its feature maps shrink to nothing), "
                         f"got {image_size}")
    model: nn.Module
    if name == "liver_cnn":
        model = LiverLesionCNN(in_channels, num_classes, image_size, 0.5 if dropout is None else dropout)
    elif name == "fracture_cnn":
        model = BoneFractureCNN(in_channels, num_classes, image_size, dropout)
    else:
        model = _library_network(name, in_channels, num_classes, dropout)
    if pretrained or weights is not None:
        load_backbone(model, resolve_weights(name, weights), name)
    return model


def _library_network(name: str, in_channels: int, num_classes: int, dropout: float | None) -> nn.Module:
    """A torchvision network (never its downloading path) or MONAI's DenseNet121, with ``head_name`` set."""
    if name == "densenet121":
        from monai.networks.nets import DenseNet121

        model = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes)
    else:
        from torchvision import models

        kwargs: dict = {"weights": None, "num_classes": num_classes}
        if name == "inception_v3":
            kwargs.update(aux_logits=False, init_weights=True)
        if dropout is not None and name in OWN_DROPOUT:
            kwargs["dropout"] = dropout
        model = getattr(models, name)(**kwargs)
        if in_channels != 3:
            _replace_first_conv(model, FIRST_CONV[name], in_channels)
    if dropout is not None and name not in OWN_DROPOUT:
        model.set_submodule(HEAD[name], nn.Sequential(nn.Dropout(dropout), model.get_submodule(HEAD[name])))
    model.head_name = HEAD[name]  # type: ignore[assignment]  # torch types Module attributes Tensor | Module
    return model


def _replace_first_conv(model: nn.Module, conv_name: str, in_channels: int) -> None:
    """Swap ``conv_name`` for an ``in_channels`` convolution whose filters copy the old RGB ones cyclically."""
    old = model.get_submodule(conv_name)
    assert isinstance(old, nn.Conv2d)  # FIRST_CONV names a torchvision network's first Conv2d
    # torch types a Conv2d's kernel_size, stride, padding, dilation tuple[int, ...], its constructor tuple[int, int]
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,  # type: ignore[arg-type]
                    old.groups, old.bias is not None, old.padding_mode)
    with torch.no_grad():
        new.weight.copy_(old.weight[:, [i % old.in_channels for i in range(in_channels)]])
        if old.bias is not None:
            assert new.bias is not None  # built with bias when old has one
            new.bias.copy_(old.bias)
    model.set_submodule(conv_name, new)


def torchvision_weights_file(name: str) -> str | None:
    """torchvision's ImageNet checkpoint file name for ``name`` (e.g. ``resnet18-f37072fd.pth``), or None.

    Read from ``torchvision.models.<Name>_Weights.IMAGENET1K_V1.url``; nothing is downloaded.
    """
    if name not in TORCHVISION and name != "densenet121":
        return None
    from torchvision.models import get_model_weights

    return get_model_weights(name).IMAGENET1K_V1.url.rsplit("/", 1)[-1]


def resolve_weights(name: str, weights: str | os.PathLike | None = None) -> Path:
    """The weights file for network ``name``: ``weights`` (a file, or a folder holding torchvision's file) or
    the torch hub cache.

    Raises:
        MissingWeightsError: naming the network, the paths tried and how to get the file.
        ValueError: for a network without published weights when ``weights`` is None.
    """
    filename = torchvision_weights_file(name)
    if weights is None and filename is None:
        raise ValueError(f"{name} has no published pretrained weights; pass weights=PATH to a state-dict file "
                         "(or pretrained=False)")
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if weights is not None:
        origin, path = "weights=", Path(weights).expanduser()
        path = path / filename if path.is_dir() and filename else path
    else:
        origin, path = "torch hub cache ", cache / str(filename)
    if path.is_file():
        return path
    how = (f"To get it, on a machine that is online run: python -c 'import torchvision; "
           f"torchvision.models.{name}(weights=\"IMAGENET1K_V1\")', then copy ~/.cache/torch/hub/checkpoints/"
           f"{filename} to {cache}/ on this machine or pass weights=PATH" if filename else
           "Pass weights= the path of an existing state-dict file")
    raise MissingWeightsError(f"{name} weights {filename or 'file'} not found; tried {origin}{path} (not a file). "
                              f"{how}; nothing is downloaded implicitly")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors saved at ``path``, unwrapped from ``{"state_dict"|"model"|"network": ...}`` and ``module.``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, or pickled objects other than tensors
        raise InputError(path, f"cannot read a state dict: {error}") from error
    for key in ("state_dict", "model", "network"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "not a state dict (a mapping of parameter names to tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _densenet_keys(key: str) -> str:
    """torchvision DenseNet key -> MONAI's: ``denselayer1.norm.1.weight`` / ``norm1.weight`` -> ``layers.norm1.…``."""
    key = re.sub(r"^(.*denselayer\d+)\.(norm|relu|conv)\.?([12])\.", r"\1.layers.\2\3.", key)
    return re.sub(r"^classifier\.", "class_layers.out.", key)


def load_backbone(model: nn.Module, path: str | os.PathLike, name: str) -> nn.Module:
    """Load the state dict at ``path`` into every layer of ``model`` but its head, strictly; in place.

    A 3-channel first convolution in the file becomes the sum over R, G, B when ``model`` takes 1 channel.
    Raises :class:`~medsynth.errors.InputError` naming ``path`` when keys or shapes do not match.
    """
    state = read_state_dict(path)
    if name == "densenet121":
        state = {_densenet_keys(k): v for k, v in state.items()}
    head = cast(str, model.head_name) + "."  # set by classifier(); torch types it Tensor | Module
    skipped = (head, *SKIPPED_KEYS.get(name, ()))
    state = {k: v for k, v in state.items() if not k.startswith(skipped)}
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    conv = FIRST_CONV.get(name, "features.0") + ".weight"
    if conv in state and state[conv].dim() == 4 and state[conv].shape[1] == 3 and expected[conv].shape[1] == 1:
        state[conv] = state[conv].sum(dim=1, keepdim=True)
    # checkpoints saved before PyTorch 0.4.1 lack num_batches_tracked; batch norm fills it in
    missing = sorted(k for k in expected.keys() - state.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(state.keys() - expected.keys())
    wrong = [f"{k} {tuple(state[k].shape)} (network: {tuple(expected[k].shape)})"
             for k in sorted(state.keys() & expected.keys()) if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        problems = [f"{len(items)} {what} (first: {', '.join(items[:3])})" for what, items in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)) if items]
        raise InputError(path, f"does not match {name} (in_channels={expected[conv].shape[1]}, head "
                               f"{model.head_name!r} excluded): {'; '.join(problems)}")
    model.load_state_dict(state, strict=False)
    return model


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the final layer, ``model.head_name`` (set by :func:`classifier`)."""
    name = getattr(model, "head_name", None)
    if name is None:
        raise ValueError(f"{type(model).__name__} has no head_name; build it with "
                         "medsynth.networks.classifiers.classifier or set model.head_name")
    return list(model.get_submodule(name).parameters())


def set_backbone_trainable(model: nn.Module, trainable: bool) -> nn.Module:
    """Set ``requires_grad`` on every parameter but the head's; the head is left as it is.

    Only gradients: in train mode the frozen backbone's batch norms still update their running statistics.
    """
    head = {id(p) for p in head_parameters(model)}
    for parameter in model.parameters():
        if id(parameter) not in head:
            parameter.requires_grad_(trainable)
    return model
