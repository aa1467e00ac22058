"""The embedded default data set: generated once from the phantoms, then reused."""

from __future__ import annotations

import json

import pytest

from medsynth.data import splits
from medsynth.data.datalist import class_counts, load_datalist
from medsynth.data.embedded import cache_root, demo_cache_dir, demo_datalist
from medsynth.data.splits import SPLITS, split_summary


@pytest.mark.parametrize(("task", "n", "classes", "modality"), [
    ("skin", 24, ["benign", "malignant"], "dermoscopy"),
    ("xray", 18, ["no_fracture", "fracture"], "xray"),
    ("ct", 9, ["cyst", "metastasis", "hemangioma"], "ct"),
])
def test_demo_datalist_builds_once_and_loads(tmp_path, task, n, classes, modality):
    path = demo_datalist(task, n=n, seed=3, root=tmp_path / task)
    datalist = load_datalist(path)
    assert datalist["classes"] == classes and datalist["modality"] == modality
    assert sum(sum(class_counts(datalist, s).values()) for s in SPLITS) == n
    assert datalist["split"]["version"] == splits.SPLIT_VERSION
    assert datalist["split"]["summary"] == split_summary(datalist)
    if task == "ct":
        assert datalist["window"] == [-100, 200]
    stamp = path.stat().st_mtime_ns
    assert demo_datalist(task, n=n, seed=3, root=tmp_path / task) == path
    assert path.stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_cache_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"


def test_unknown_task_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown demo task"):
        demo_datalist("mri", root=tmp_path)


def test_cache_folder_names_the_split_version(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE", str(tmp_path / "c"))
    current = demo_cache_dir("skin", n=24, seed=3)
    assert current.parent.parent == tmp_path / "c" / "demo" and current.name.endswith(f"-split{splits.SPLIT_VERSION}")
    monkeypatch.setattr(splits, "SPLIT_VERSION", splits.SPLIT_VERSION + 1)
    changed = demo_cache_dir("skin", n=24, seed=3)
    assert changed != current and changed.parent == current.parent


def test_demo_datalist_uses_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE", str(tmp_path / "c"))
    path = demo_datalist("skin", n=12, seed=1)
    assert path == demo_cache_dir("skin", n=12, seed=1) / "datalist" / "datalist.json"


def test_datalist_of_another_split_version_is_rebuilt_not_reused(tmp_path):
    path = demo_datalist("skin", n=24, seed=3, root=tmp_path / "skin")
    old = json.loads(path.read_text())
    old["split"]["version"] = 1
    old["test"], old["training"] = [], old["training"] + old["test"]
    path.write_text(json.dumps(old))
    assert demo_datalist("skin", n=24, seed=3, root=tmp_path / "skin") == path
    rebuilt = load_datalist(path)
    assert rebuilt["split"]["version"] == splits.SPLIT_VERSION and rebuilt["test"]
