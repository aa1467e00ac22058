"""Extractors and the extraction loop: a classifier's penultimate layer, seeded random nets, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from medsynth.metrics.features import (
    ClassifierExtractor,
    RandomCNNExtractor,
    extract_features,
    features_of_tensors,
)
from medsynth.metrics.images import load_unit_image, prepare_batch


@pytest.fixture
def pngs(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_classifier_extractor_takes_the_penultimate_layer(tmp_path):
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=2).eval()
    torch.save(model.state_dict(), tmp_path / "clf.pt")
    extractor = ClassifierExtractor(resnet18(weights=None, num_classes=2), tmp_path / "clf.pt", "avgpool",
                                    input_size=(64, 64), in_channels=3)
    x = torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        features, logits = extractor(x)
        penultimate = torch.nn.Sequential(*list(model.children())[:-1])(x).flatten(1)  # everything but fc
        torch.testing.assert_close(features, penultimate)
        torch.testing.assert_close(logits, model(x))
    assert features.shape == (3, 512) and extractor.name == "classifier:ResNet(clf.pt)@avgpool"


def test_classifier_feature_maps_are_average_pooled_and_bad_layers_named():
    model = resnet18(weights=None, num_classes=2)
    extractor = ClassifierExtractor(model, None, "layer4", input_size=(64, 64), in_channels=3)
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        features, _ = extractor(x)
        expected = model.layer4(model.layer3(model.layer2(model.layer1(
            model.maxpool(model.relu(model.bn1(model.conv1(x)))))))).mean(dim=(2, 3))
    torch.testing.assert_close(features, expected)
    with pytest.raises(ValueError, match="no module 'head' in ResNet; modules include: conv1"):
        ClassifierExtractor(model, None, "head")


def test_random_cnn_is_seeded():
    x = torch.rand(4, 3, 32, 32)
    a, b, c = RandomCNNExtractor(1), RandomCNNExtractor(1), RandomCNNExtractor(2)
    torch.testing.assert_close(a(x), b(x))
    assert not torch.equal(a(x)[0], c(x)[0]) and a(x)[0].shape == (4, 64) and a(x)[1].shape == (4, 10)


def test_file_features_equal_tensor_features_whatever_the_batch_size(pngs):
    extractor = RandomCNNExtractor(0)
    images = torch.from_numpy(np.stack([load_unit_image(p) for p in pngs]))
    expected = features_of_tensors([images], extractor)
    for batch_size in (1, 3, 50):
        got = extract_features(pngs, extractor, batch_size=batch_size, progress=False)
        np.testing.assert_allclose(got.features, expected.features, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.logits, expected.logits, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        direct, _ = extractor(prepare_batch(images, 3, (32, 32)))
    np.testing.assert_allclose(expected.features, direct.double().numpy(), rtol=1e-6)


def test_images_of_different_sizes_are_resized_one_by_one(pngs, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.full((40, 30), 128, np.uint8)).save(big)
    extractor = RandomCNNExtractor(0)
    both = extract_features([pngs[0], str(big)], extractor, progress=False)
    alone = extract_features([str(big)], extractor, progress=False)
    np.testing.assert_allclose(both.features[1], alone.features[0], rtol=1e-5)
    assert both.subset([1]).features.shape == (1, 64)
