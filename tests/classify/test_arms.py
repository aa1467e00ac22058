"""Experiment arms: the training items of each arm, synthetic-set loading and selection."""

from __future__ import annotations

import json

import pytest

from medsynth.classify.arms import ARMS, arm_stages, counts_by_class, load_synthetic, parse_arms, select_synthetic
from medsynth.errors import InputError

CLASSES = ["benign", "malignant"]


def _items(n_benign: int, n_malignant: int, source: str = "real", prefix: str = "r") -> list[dict]:
    return ([{"image": f"/d/{prefix}b{i}.png", "label": 0, "source": source} for i in range(n_benign)]
            + [{"image": f"/d/{prefix}m{i}.png", "label": 1, "source": source} for i in range(n_malignant)])


def _write(path, datalist: dict) -> str:
    for split in ("training", "validation", "test"):
        for item in datalist.get(split, []):
            image = path.parent / item["image"]
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(b"")
    path.write_text(json.dumps(datalist))
    return str(path)


def test_parse_arms_accepts_one_a_list_or_commas_and_refuses_unknown():
    assert parse_arms("real") == ["real"]
    assert parse_arms("real, synthetic") == ["real", "synthetic"]
    assert parse_arms(["warm_start", "phases"]) == ["warm_start", "phases"]
    with pytest.raises(ValueError, match="unknown arm.*gan"):
        parse_arms("real,gan")
    with pytest.raises(ValueError, match="twice"):
        parse_arms("real,real")


def test_one_stage_arms_train_on_the_real_items():
    real = _items(50, 5)
    for arm in ("real", "classic_aug", "rebalance"):
        (stage,) = arm_stages(arm, real, None, CLASSES, rebalance="oversample")
        assert [it["image"] for it in stage.training] == [it["image"] for it in real]
        assert stage.augment == (arm == "classic_aug")
        assert stage.rebalance == ("oversample" if arm == "rebalance" else None)
        assert stage.counts == {"benign": 50, "malignant": 5} and stage.scored


def test_synthetic_arms_compose_real_and_synthetic_as_the_studies_did():
    real, syn = _items(50, 5), _items(0, 20, "synthetic", "s")
    (both,) = arm_stages("synthetic", real, syn, CLASSES)
    assert both.counts == {"benign": 50, "malignant": 25}
    # TSTR: synthetic minority + the real images of the classes the set lacks; no real malignant image
    (tstr,) = arm_stages("synthetic_only", real, syn, CLASSES)
    assert tstr.counts == {"benign": 50, "malignant": 20}
    assert all(it["source"] == "synthetic" for it in tstr.training if it["label"] == 1)
    pre, fine = arm_stages("warm_start", real, syn, CLASSES)
    assert (pre.name, pre.scored, pre.counts) == ("pretrain", False, {"benign": 50, "malignant": 20})
    assert (fine.init_from, fine.scored, fine.counts) == ("pretrain", True, {"benign": 50, "malignant": 5})
    assert all(it["source"] == "real" for it in fine.training)


def test_phases_add_equal_increments_with_class_proportions_kept():
    real, syn = _items(40, 4), _items(10, 20, "synthetic", "s")
    stages = arm_stages("phases", real, syn, CLASSES, phases=5)
    assert [s.name for s in stages] == [f"phase_{i}" for i in range(1, 6)]
    added = [len(s.training) - len(real) for s in stages]
    assert added == [6, 12, 18, 24, 30]
    assert [s.counts["malignant"] - 4 for s in stages] == [4, 8, 12, 16, 20]  # 2:1 malignant:benign in every prefix
    assert all(set(map(id, a.training)) <= set(map(id, b.training)) for a, b in zip(stages, stages[1:], strict=False))
    with pytest.raises(ValueError, match="phases must be between 1 and the 30"):
        arm_stages("phases", real, syn, CLASSES, phases=31)


def test_arms_refuse_what_cannot_be_trained():
    with pytest.raises(ValueError, match="needs a synthetic datalist"):
        arm_stages("synthetic", _items(5, 5), None, CLASSES)
    with pytest.raises(ValueError, match="one class only"):
        arm_stages("real", _items(5, 0), None, CLASSES)
    with pytest.raises(ValueError, match="unknown rebalance"):
        arm_stages("rebalance", _items(5, 5), None, CLASSES, rebalance="smote")
    assert set(ARMS) == {"real", "classic_aug", "rebalance", "oversample_matched", "synthetic", "warm_start",
                         "synthetic_only", "phases"}


def test_select_synthetic_all_count_and_target_ratio():
    real, syn = _items(525, 70), _items(10, 455, "synthetic", "s")
    assert len(select_synthetic(real, syn, CLASSES)) == 465
    picked = select_synthetic(real, syn, CLASSES, count=93, seed=1)
    # shares kept: 93 * 10/465 = 2 benign, 91 malignant
    assert counts_by_class(picked, CLASSES) == {"benign": 2, "malignant": 91}
    assert [it["image"] for it in picked] != [it["image"] for it in select_synthetic(real, syn, CLASSES, count=93,
                                                                                      seed=2)]
    # 525:70 to 2.39:1 needs ceil(525 / 2.39) - 70 = 150 malignant; benign is the majority, so none
    ratio = select_synthetic(real, syn, CLASSES, target_ratio="2.39:1")
    assert counts_by_class(ratio, CLASSES) == {"benign": 0, "malignant": 150}
    with pytest.raises(ValueError, match="at most one"):
        select_synthetic(real, syn, CLASSES, count=5, target_ratio="1:1")
    with pytest.raises(ValueError, match="between 0 and the 465"):
        select_synthetic(real, syn, CLASSES, count=466)


def test_target_ratio_beyond_the_set_uses_all_and_warns(caplog):
    real, syn = _items(500, 10), _items(0, 30, "synthetic", "s")
    with caplog.at_level("WARNING"):
        picked = select_synthetic(real, syn, CLASSES, target_ratio="1:1")
    assert len(picked) == 30 and "the set holds 30" in caplog.text


def test_load_synthetic_matches_classes_by_name(tmp_path):
    real = {"task": "skin", "modality": "dermoscopy", "classes": CLASSES, "training": []}
    # a set written with the class order reversed: its label 0 is "malignant"
    syn = {"task": "skin", "modality": "dermoscopy", "classes": ["malignant", "benign"], "source": "synthetic",
           "training": [{"image": "img/a.png", "label": 0}, {"image": "img/b.png", "label": 1}]}
    items = load_synthetic(_write(tmp_path / "datalist.json", syn), real)
    assert [(it["image"].endswith("a.png"), it["label"], it["source"]) for it in items] == [
        (True, 1, "synthetic"), (False, 0, "synthetic")]


def test_load_synthetic_takes_only_synthetic_items_of_an_augmented_datalist(tmp_path):
    real = {"classes": CLASSES, "modality": "dermoscopy"}
    mixed = {"classes": CLASSES, "modality": "dermoscopy",
             "training": [{"image": "r.png", "label": 0, "source": "real"},
                          {"image": "s.png", "label": 1, "source": "synthetic"}]}
    items = load_synthetic(_write(tmp_path / "mixed.json", mixed), real)
    assert len(items) == 1 and items[0]["image"].endswith("s.png")


@pytest.mark.parametrize("change, message", [
    ({"modality": "xray"}, "modality 'xray' differs"),
    ({"classes": ["benign", "nevus"]}, r"synthetic classes \['nevus'\] are not classes"),
    ({"training": [{"image": "r.png", "label": 0, "source": "real"}], "source": None}, "holds no synthetic images"),
])
def test_load_synthetic_errors_name_the_file(tmp_path, change, message):
    syn = {"classes": CLASSES, "modality": "dermoscopy", "source": "synthetic",
           "training": [{"image": "a.png", "label": 1}]}
    syn.update(change)
    if syn.get("source") is None:
        syn.pop("source")
    path = _write(tmp_path / "syn.json", syn)
    with pytest.raises(InputError, match=message) as error:
        load_synthetic(path, {"classes": CLASSES, "modality": "dermoscopy"})
    assert error.value.path == path
