"""Every bundle has the MONAI bundle layout, metadata valid against schema 20240725, and metadata that
describes what its configs build.

The schema is MONAI's ``meta_schema_20240725.json`` (md5 06954cad2cc5d3784e72077ac76f0fc8, the hash MONAI's own
tests pin), copied next to this file so that the suite runs offline.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
import torch
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("meta_schema_20240725.json")
GAN_BUNDLES = ("dcgan", "cdcgan", "acgan", "wgan_gp")
BUNDLES = (*GAN_BUNDLES, "classifier")
FILES = ("LICENSE", "docs/README.md", "configs/metadata.json", "configs/train.yaml", "configs/inference.yaml",
         "configs/multi_gpu_train.yaml", "configs/logging.conf")


def _metadata(name: str) -> dict:
    return json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())


def test_schema_copy_is_monai_pinned_file():
    assert hashlib.md5(SCHEMA.read_bytes()).hexdigest() == "06954cad2cc5d3784e72077ac76f0fc8"


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_has_the_files(name):
    missing = [f for f in FILES if not (REPO / "bundles" / name / f).is_file()]
    assert not missing, f"bundles/{name} lacks {missing}"
    assert not list((REPO / "bundles" / name).rglob("*.py")), "bundles are YAML over the package: no Python"


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_validates_against_schema(name):
    meta = _metadata(name)
    jsonschema.validate(meta, json.loads(SCHEMA.read_text()))
    assert meta["schema"].endswith("meta_schema_20240725.json")
    assert meta["version"] in meta["changelog"], "the version must have a changelog entry"
    assert ("discriminator_data_format" in meta) == (name in GAN_BUNDLES)


def test_metadata_validation_rejects_a_broken_file(tmp_path):
    """The schema check can fail: a metadata without network_data_format is refused."""
    meta = _metadata("cdcgan")
    del meta["network_data_format"]
    with pytest.raises(jsonschema.ValidationError, match="network_data_format"):
        jsonschema.validate(meta, json.loads(SCHEMA.read_text()))


def test_monai_verify_metadata_accepts_bundle(tmp_path):
    """MONAI's own verifier, offline: with the schema file already present it skips the download."""
    from monai.bundle import verify_metadata

    schema = tmp_path / "schema.json"
    schema.write_bytes(SCHEMA.read_bytes())
    verify_metadata(meta_file=str(REPO / "bundles/cdcgan/configs/metadata.json"), filepath=str(schema))


@pytest.mark.parametrize("name", GAN_BUNDLES)
def test_metadata_matches_the_networks_the_configs_build(name):
    """The generator and discriminator described in metadata.json are the ones train.yaml builds (demo defaults)."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / name / "configs" / "train.yaml"))
    meta = _metadata(name)
    size, latent = parser["image_size"], parser["latent_size"]
    g_in, g_out = meta["network_data_format"]["inputs"], meta["network_data_format"]["outputs"]["pred"]
    assert g_in["latent"]["spatial_shape"] == [latent]
    assert g_out["spatial_shape"] == [size, size] and g_out["value_range"] == [-1, 1]
    d_in = meta["discriminator_data_format"]["inputs"]
    assert d_in["image"]["spatial_shape"] == [size, size]
    conditional = "label" in g_in
    assert ("label" in d_in) == conditional or d_in.keys() == {"image"}
    # build the networks with the demo's 2 classes and 3 channels, and check shapes against the metadata
    channels, classes = g_out["num_channels"], 2
    parser["num_classes"] = classes if conditional else 0
    parser["channels"] = channels
    generator = parser.get_parsed_content("generator_def", instantiate=True)
    discriminator = parser.get_parsed_content("discriminator_def", instantiate=True)
    z = torch.randn(2, latent)
    y = torch.tensor([0, 1]) if conditional else None
    with torch.no_grad():
        image = generator.eval()(z, y)
        out = discriminator.eval()(image, y)
    assert tuple(image.shape) == (2, channels, size, size)
    heads = meta["discriminator_data_format"]["outputs"]
    if "class_logits" in heads:
        assert isinstance(out, tuple) and tuple(out[1].shape) == (2, heads["class_logits"]["num_channels"])
    else:
        assert tuple(out.shape) == (2,)


@pytest.mark.parametrize("name", GAN_BUNDLES)
def test_inference_builds_the_trained_generator(name):
    """inference.yaml's network_def has the same sizes as train.yaml's generator (else model.pt would not load)."""
    train, infer = ConfigParser(), ConfigParser()
    train.read_config(str(REPO / "bundles" / name / "configs" / "train.yaml"))
    infer.read_config(str(REPO / "bundles" / name / "configs" / "inference.yaml"))
    for key in ("image_size", "latent_size", "num_blocks", "base_channels", "bundle_root", "bundle_name"):
        assert infer[key] == train[key], key


def test_logging_conf_identical_across_bundles():
    texts = {(REPO / "bundles" / n / "configs" / "logging.conf").read_text() for n in BUNDLES}
    assert len(texts) == 1


def test_bone_fracture_override_builds_the_study_networks():
    """configs/bone_fracture.yaml over the dcgan bundle gives the bone-fracture study's Keras GAN, parameter for
    parameter (3,979,651 and 404,801 in the study's model summaries, at 64x64x3), in training and in inference."""
    configs = REPO / "bundles" / "dcgan" / "configs"
    for kind, net_id in (("train", "generator_def"), ("inference", "network_def")):
        parser = ConfigParser()
        parser.read_config([str(configs / f"{kind}.yaml"), str(configs / "bone_fracture.yaml")])
        parser["channels"] = 3
        parser[net_id + "#channels"] = 3
        generator = parser.get_parsed_content(net_id, instantiate=True)
        assert sum(p.numel() for p in generator.parameters()) == 3_979_651, kind
    parser = ConfigParser()
    parser.read_config([str(configs / "train.yaml"), str(configs / "bone_fracture.yaml")])
    parser["channels"] = 3
    discriminator = parser.get_parsed_content("discriminator_def", instantiate=True)
    assert sum(p.numel() for p in discriminator.parameters()) == 404_801
