"""The GAN bundles share one body: generated parts equal their templates, recipes keep to their keys."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from medsynth import bundle_templates as bt
from medsynth.bundle_templates.__main__ import main
from tests.bundles.conftest import REPO


def _copy_bundles(tmp_path):
    shutil.copytree(REPO / "bundles", tmp_path / "bundles")
    return tmp_path


def test_generated_configs_equal_their_templates():
    assert bt.generate(REPO, write=False) == []


def test_every_gan_bundle_is_rendered_from_the_templates():
    rendered = [p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/train.yaml")
                if bt.BODY_MARKER in p.read_text()]
    assert sorted(rendered) == sorted(bt.GAN_BUNDLES)


@pytest.mark.parametrize("name", ["train.yaml", "inference.yaml", "multi_gpu_train.yaml"])
def test_a_hand_edited_generated_file_fails_the_check(tmp_path, name, capsys):
    repo = _copy_bundles(tmp_path)
    path = repo / "bundles" / "cdcgan" / "configs" / name
    text = path.read_text()
    path.write_text(text.replace("\n", "\n# a hand edit\n", 1) if name != "train.yaml" else
                    text.replace("    n_saved: 2", "    n_saved: 3"))
    problems = bt.generate(repo, write=False)
    assert problems == [f"{path}: differs from its template (python -m medsynth.bundle_templates)"]
    assert main(["--repo", str(repo), "--check"]) == 1 and str(path) in capsys.readouterr().err
    assert main(["--repo", str(repo)]) == 0 and path.read_text() == text  # regenerating repairs it


def test_a_recipe_that_redeclares_shared_wiring_fails(tmp_path):
    repo = _copy_bundles(tmp_path)
    path = repo / "bundles" / "acgan" / "configs" / "train.yaml"
    recipe, body = bt.split_recipe(path.read_text())
    path.write_text(recipe.replace("seed: 0\n", "seed: 0\ndevice: cpu\n") + body)
    assert any("re-declares 'device'" in p for p in bt.generate(repo, write=False))


def test_a_recipe_missing_a_key_of_the_body_fails(tmp_path):
    repo = _copy_bundles(tmp_path)
    path = repo / "bundles" / "wgan_gp" / "configs" / "train.yaml"
    recipe, body = bt.split_recipe(path.read_text())
    path.write_text(re.sub(r"\ng_act: .*\n", "\n", recipe) + body)
    assert any("lacks 'g_act'" in p for p in bt.generate(repo, write=False))


def test_train_yaml_without_the_marker_is_refused(tmp_path):
    with pytest.raises(ValueError, match="shared GAN body"):
        bt.split_recipe("loss: hinge\n", tmp_path / "train.yaml")


@pytest.mark.parametrize("bundle", bt.GAN_BUNDLES)
def test_the_recipe_names_every_hyperparameter_as_a_top_level_key(bundle):
    """A reader of train.yaml sees every knob first: the recipe part holds all keys the body reads."""
    recipe, _ = bt.split_recipe((REPO / "bundles" / bundle / "configs" / "train.yaml").read_text())
    keys = set(yaml.safe_load(recipe))
    assert bt.required_keys() <= keys
    assert {"loss", "g_lr", "d_lr", "latent_size", "n_critic", "batch_size", "num_blocks", "base_channels"} <= keys


def test_no_config_switches_a_handler_off_by_its_list_position():
    offenders = [str(p) for p in (REPO / "bundles").glob("*/configs/*.yaml")
                 if re.search(r"handlers#\d+#_disabled_", p.read_text())]
    assert not offenders
