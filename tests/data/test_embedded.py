"""The embedded default data set: generated once from the phantoms, then reused."""

from __future__ import annotations

import pytest

from medsynth.data.datalist import class_counts, load_datalist
from medsynth.data.embedded import cache_root, demo_datalist
from medsynth.data.splits import SPLITS


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
