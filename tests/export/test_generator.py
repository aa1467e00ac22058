"""model.pt.json: what training records about the generator, and how inference rebuilds it."""

from __future__ import annotations

import functools
import json

import pytest
import torch

from medsynth.errors import InputError
from medsynth.export.generator import (
    GeneratorInfo,
    build_generator,
    check_generator_classes,
    generator_info,
    network_spec,
    read_generator_info,
    sidecar_path,
)
from medsynth.networks.dcgan import Generator


class _Data:  # the TrainingData facts generator_info reads
    classes, num_classes, train_class, path = ["benign", "malignant"], 2, None, "runs/datalist.json"


def _factory(**extra):
    return functools.partial(Generator, latent_size=8, image_size=16, channels=1, num_blocks=2, base_channels=4,
                             num_classes=2, channels_per_block=None, **extra)


def test_sidecar_round_trip_rebuilds_the_same_network(tmp_path):
    info = generator_info(_factory(), _Data(), conditional=True, bundle="cdcgan", version="0.2.0")
    assert info.network["_target_"] == "medsynth.networks.dcgan.Generator"
    assert info.generated_classes == [0, 1] and info.latent_size == 8 and info.image_size == 16
    model = tmp_path / "model.pt"
    sidecar_path(model).write_text(json.dumps(info.to_json()))
    again = read_generator_info(model)
    assert again == info
    net, ref = build_generator(again), _factory()()
    assert [p.shape for p in net.parameters()] == [p.shape for p in ref.parameters()]
    net.load_state_dict(ref.state_dict())  # strict: the same architecture


def test_spectral_norm_is_recorded_as_baked():
    """model.pt holds spectral norm baked into plain weights, so the rebuilt generator must not add it again."""
    info = generator_info(_factory(spectral_norm=True), _Data(), conditional=True)
    assert info.network["spectral_norm"] is False


def test_unconditional_generator_draws_its_trained_class():
    data = _Data()
    data.train_class = 1
    assert generator_info(_factory(), data, conditional=False).generated_classes == [1]


def test_missing_sidecar_names_the_file(tmp_path):
    with pytest.raises(InputError, match="model.pt.json") as info:
        read_generator_info(tmp_path / "model.pt")
    assert "train" in str(info.value)


@pytest.mark.parametrize("content", ["{not json", '{"network": {}}', json.dumps([1, 2]),
                                     json.dumps({"network": {"_target_": "os.system"}, "classes": ["a"],
                                                 "generated_classes": [0], "conditional": True})])
def test_malformed_or_foreign_sidecar_is_refused(tmp_path, content):
    sidecar_path(tmp_path / "model.pt").write_text(content)
    with pytest.raises(InputError, match="model.pt.json"):
        read_generator_info(tmp_path / "model.pt")


def test_other_classes_are_refused(tmp_path):
    info = GeneratorInfo(network=network_spec(_factory()), classes=["benign", "malignant"], generated_classes=[0, 1],
                         conditional=True)
    check_generator_classes(info, ["benign", "malignant"], tmp_path / "model.pt")
    with pytest.raises(InputError, match="trained on classes"):
        check_generator_classes(info, ["malignant", "benign"], tmp_path / "model.pt")


def test_network_spec_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="sidecar"):
        network_spec(functools.partial(Generator, norm=torch.nn.BatchNorm2d))
