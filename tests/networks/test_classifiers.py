"""Classifiers by name: shapes for 1 and 3 channels, the study CNNs against their sources, offline pretrained
loading (cache, explicit file, 1-channel RGB sum, mismatches, missing files), dropout and the freeze helpers."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from medsynth.errors import InputError
from medsynth.metrics.inception import MissingWeightsError
from medsynth.networks.classifiers import (
    NETWORKS,
    BoneFractureCNN,
    LiverLesionCNN,
    classifier,
    head_parameters,
    set_backbone_trainable,
    torchvision_weights_file,
)

# the bone-fracture study's Keras summary of its CNN: params of conv2d, batch norm, conv2d, batch norm, dense, dense
KERAS_FRACTURE = [320, 128, 4624, 64, 8320, 129]
KERAS_FRACTURE_TOTAL, KERAS_FRACTURE_TRAINABLE = 13585, 13489


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test instead of reaching the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A torch hub folder in ``tmp_path``; returns its ``checkpoints`` folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def saved_resnet18(folder, name: str | None = None) -> dict[str, torch.Tensor]:
    """Save a seeded random torchvision resnet18 state dict under torchvision's file name (or ``name``)."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, folder / (name or "resnet18-f37072fd.pth"))
    return state


def params_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def with_stats(module: nn.Module) -> int:
    """Parameters plus batch-norm running mean and variance: what Keras counts."""
    return params_of(module) + sum(b.numel() for n, b in module.named_buffers() if n.endswith(("_mean", "_var")))


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_maps_1_and_3_channels_to_logits(name):
    size = 75 if name == "inception_v3" else 64
    for channels in (1, 3):
        model = classifier(name, in_channels=channels, num_classes=3, image_size=size).eval()
        with torch.no_grad():
            logits = model(torch.randn(2, channels, size, size))
        assert logits.shape == (2, 3)
        assert [p.shape[0] for p in head_parameters(model)] == [3, 3]  # weight rows and bias of the new head
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert first.in_channels == channels


@pytest.mark.parametrize(("name", "minimum"), [("inception_v3", 75), ("alexnet", 63), ("fracture_cnn", 27)])
def test_too_small_images_are_refused_naming_the_minimum(name, minimum):
    with pytest.raises(ValueError, match=f">= {minimum}"):
        classifier(name, image_size=minimum - 1)


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="resnet18.*fracture_cnn"):
        classifier("vgg16")


def test_fracture_cnn_matches_the_keras_summary():
    model = BoneFractureCNN(in_channels=1, num_classes=1, image_size=64)
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    assert [with_stats(m) for m in weighted] == KERAS_FRACTURE
    assert with_stats(model) == KERAS_FRACTURE_TOTAL and params_of(model) == KERAS_FRACTURE_TRAINABLE
    two = BoneFractureCNN(num_classes=2)  # softmax head: 129 -> 258, the rest unchanged
    assert params_of(two.head) == 258 and params_of(two) == KERAS_FRACTURE_TRAINABLE - 129 + 258
    shapes, x = [], torch.randn(1, 1, 64, 64)
    for layer in model.features:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[0] == (32, 21, 21) and shapes[3] == (16, 7, 7) and shapes[-1] == (16, 2, 2)


def test_study_cnns_follow_image_size_and_dropout():
    liver = LiverLesionCNN(in_channels=1, num_classes=3, image_size=32)
    assert liver.classifier[1].in_features == 128 * 4 * 4
    assert sum(isinstance(m, nn.Conv2d) for m in liver.modules()) == 3
    assert sum(isinstance(m, nn.MaxPool2d) for m in liver.modules()) == 3
    assert [m.p for m in liver.modules() if isinstance(m, nn.Dropout)] == [0.5]
    fracture = classifier("fracture_cnn", in_channels=3, image_size=100, dropout=0.1)
    assert fracture.classifier[1].in_features == 16 * 3 * 3  # 100 -> 33 -> 11 -> 3
    assert [m.p for m in fracture.modules() if isinstance(m, nn.Dropout)] == [0.1, 0.1]
    assert [m.p for m in classifier("fracture_cnn").modules() if isinstance(m, nn.Dropout)] == [0.25, 0.5]


def test_dropout_sets_the_networks_own_or_adds_one_before_the_head():
    alexnet = classifier("alexnet", dropout=0.2)
    assert [m.p for m in alexnet.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.2]
    resnet = classifier("resnet18", num_classes=4, dropout=0.3).eval()
    assert isinstance(resnet.fc[0], nn.Dropout) and resnet.fc[0].p == 0.3
    assert resnet(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert not any(isinstance(m, nn.Dropout) for m in classifier("resnet18").modules())


def test_pretrained_loads_the_cached_file_and_sums_rgb_for_one_channel(hub):
    saved = saved_resnet18(hub)
    rgb = classifier("resnet18", in_channels=3, num_classes=2, pretrained=True)
    gray = classifier("resnet18", in_channels=1, num_classes=2, pretrained=True)
    for key, value in rgb.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    assert rgb.fc.weight.shape == (2, 512)
    torch.testing.assert_close(gray.conv1.weight, saved["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(gray.layer4[1].conv2.weight, saved["layer4.1.conv2.weight"])


def test_missing_weights_name_the_file_the_paths_and_how_to_get_it(hub):
    with pytest.raises(MissingWeightsError) as error:
        classifier("resnet18", pretrained=True)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(hub) in message
    assert "torchvision.models.resnet18(weights=\"IMAGENET1K_V1\")" in message
    with pytest.raises(MissingWeightsError, match="nowhere.pt"):  # an explicit path is not a fallback
        classifier("resnet18", weights=hub / "nowhere.pt")
    assert torchvision_weights_file("efficientnet_b3").startswith("efficientnet_b3")


def test_explicit_weights_file_wrapped_or_bare_loads(hub, tmp_path):
    saved = saved_resnet18(tmp_path, "mine.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in saved.items()}, "epoch": 3}, tmp_path / "wrapped.pt")
    for path in (tmp_path / "mine.pt", tmp_path / "wrapped.pt"):
        model = classifier("resnet18", in_channels=1, weights=path)  # weights implies pretrained
        torch.testing.assert_close(model.layer1[0].bn1.running_var, saved["layer1.0.bn1.running_var"])


def test_mismatched_state_dict_names_the_file(tmp_path):
    torch.save(BoneFractureCNN().state_dict(), tmp_path / "fracture.pt")
    with pytest.raises(InputError, match="fracture.pt.*does not match resnet18.*missing keys.*unexpected keys"):
        classifier("resnet18", weights=tmp_path / "fracture.pt")
    state = saved_resnet18(tmp_path)
    state["conv1.weight"] = state["conv1.weight"][:, :2]
    torch.save(state, tmp_path / "two_channels.pt")
    with pytest.raises(InputError, match="two_channels.pt.*wrong shapes.*conv1.weight"):
        classifier("resnet18", in_channels=1, weights=tmp_path / "two_channels.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="text.pt"):
        classifier("resnet18", weights=tmp_path / "text.pt")


def test_densenet121_reads_torchvisions_file_with_monais_key_names(hub):
    torch.manual_seed(2)
    state = torchvision.models.densenet121(weights=None).state_dict()
    # torchvision's published file spells dense-layer keys the pre-0.4 way: "denselayer1.norm.1.weight"
    old_style = {k.replace("norm1", "norm.1").replace("conv2", "conv.2"): v for k, v in state.items()}
    torch.save(old_style, hub / "densenet121-a639ec97.pth")
    model = classifier("densenet121", in_channels=1, num_classes=3, pretrained=True)
    layers = model.features.denseblock2.denselayer3.layers
    torch.testing.assert_close(layers.norm1.weight, state["features.denseblock2.denselayer3.norm1.weight"])
    torch.testing.assert_close(layers.conv2.weight, state["features.denseblock2.denselayer3.conv2.weight"])
    torch.testing.assert_close(model.features.conv0.weight, state["features.conv0.weight"].sum(1, keepdim=True))
    assert model.class_layers.out.out_features == 3


def test_study_cnns_need_an_explicit_weights_file(tmp_path):
    with pytest.raises(ValueError, match="no published pretrained weights.*weights=PATH"):
        classifier("liver_cnn", pretrained=True)
    torch.save(classifier("liver_cnn", in_channels=3, num_classes=5).state_dict(), tmp_path / "liver.pt")
    model = classifier("liver_cnn", in_channels=1, num_classes=2, weights=tmp_path / "liver.pt")
    assert model.features[0].weight.shape[1] == 1 and model.head.out_features == 2


def test_inception_skips_the_auxiliary_classifier_of_torchvisions_file(hub):
    full = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(full.state_dict(), hub / "inception_v3_google-0cc3c7bd.pth")
    model = classifier("inception_v3", pretrained=True, image_size=75)
    torch.testing.assert_close(model.Mixed_7c.branch_pool.conv.weight, full.Mixed_7c.branch_pool.conv.weight)


@pytest.mark.parametrize(("name", "kwargs"), [("resnet18", {}), ("alexnet", {}), ("liver_cnn", {}),
                                              ("fracture_cnn", {}), ("efficientnet_b0", {}),
                                              ("resnet18", {"dropout": 0.2})])
def test_freezing_the_backbone_leaves_only_the_head_trainable(name, kwargs):
    model = classifier(name, in_channels=1, **kwargs)
    head = head_parameters(model)
    assert head and all(isinstance(p, nn.Parameter) for p in head)
    set_backbone_trainable(model, False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in head}
    set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())


def test_head_helpers_refuse_a_model_without_head_name():
    with pytest.raises(ValueError, match="head_name"):
        head_parameters(nn.Linear(2, 2))
