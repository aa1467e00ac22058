"""ExperimentSpec: defaults, conversion of config values, and a clear ValueError naming a bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsynth.classify.spec import ExperimentSpec


def test_defaults_and_conversions(tmp_path):
    spec = ExperimentSpec(output_dir=str(tmp_path), arm="real, classic_aug", seeds="2", seed=3, max_epochs=4.0)
    assert spec.output_dir == Path(tmp_path) and spec.arms == ["real", "classic_aug"]
    assert spec.seed_list == [3, 4] and spec.max_epochs == 4 and spec.stage_pretrain_epochs == 4
    assert spec.threshold_rule == "balanced_accuracy" and spec.rebalance == "weights" and spec.model_path is None
    assert ExperimentSpec(output_dir=tmp_path, pretrain_epochs=2).stage_pretrain_epochs == 2
    assert spec.as_dict()["output_dir"] == str(tmp_path)


@pytest.mark.parametrize("value, parsed", [("matched", "matched"), (" Own ", "own"), ("40", 40), (12, 12),
                                           (12.0, 12)])
def test_steps_per_epoch_is_matched_by_default_own_or_a_positive_integer(tmp_path, value, parsed):
    assert ExperimentSpec(output_dir=tmp_path).steps_per_epoch == "matched"
    assert ExperimentSpec(output_dir=tmp_path, steps_per_epoch=value).steps_per_epoch == parsed


def test_frozen(tmp_path):
    spec = ExperimentSpec(output_dir=tmp_path)
    with pytest.raises(AttributeError):
        spec.seeds = 3


@pytest.mark.parametrize("field, value, message", [
    ("seeds", 0, "seeds must be >= 1"),
    ("seeds", "many", "seeds must be an integer"),
    ("threshold_rule", "youden", "unknown threshold_rule 'youden'"),
    ("rebalance", "smote", "unknown rebalance 'smote'"),
    ("batch_size", 0, "batch_size must be >= 1"),
    ("max_epochs", -1, "max_epochs must be >= 1"),
    ("phases", 0, "phases must be >= 1"),
    ("freeze_epochs", -1, "freeze_epochs must be >= 0"),
    ("synthetic_count", -5, "synthetic_count must be >= 0"),
    ("finetune_lr_factor", 0, "finetune_lr_factor must be a number > 0"),
    ("arm", "real,gan", "unknown arm"),
    ("steps_per_epoch", "longest", "steps_per_epoch must be 'matched', 'own' or an integer >= 1, got 'longest'"),
    ("steps_per_epoch", 0, "steps_per_epoch must be .* got 0"),
    ("steps_per_epoch", "-3", "steps_per_epoch must be .* got '-3'"),
    ("steps_per_epoch", 2.5, "steps_per_epoch must be .* got 2.5"),
    ("steps_per_epoch", True, "steps_per_epoch must be .* got True"),
    ("steps_per_epoch", None, "steps_per_epoch must be .* got None"),
])
def test_bad_values_raise_a_value_error_naming_the_field(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        ExperimentSpec(output_dir=tmp_path, **{field: value})


def test_synthetic_arms_need_a_synthetic_set(tmp_path):
    with pytest.raises(ValueError, match="needs synthetic_datalist"):
        ExperimentSpec(output_dir=tmp_path, arm="real,warm_start")
    spec = ExperimentSpec(output_dir=tmp_path, arm="warm_start", synthetic_datalist=str(tmp_path / "datalist.json"))
    assert spec.synthetic_datalist == tmp_path / "datalist.json"
    with pytest.raises(ValueError, match="at most one of synthetic_count and target_ratio"):
        ExperimentSpec(output_dir=tmp_path, synthetic_count=3, target_ratio="1:1")
