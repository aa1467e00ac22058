"""The classifier bundle's inference: the images to predict, and a handler that writes the predictions.

``inference.yaml`` predicts a split of a datalist (default ``test``) or every image of a folder, with the
network and the validation-chosen threshold that ``train.yaml`` exported (``models/model.pt`` and
``models/model.pt.json``). Labelled images (a datalist split) also get a report with 95 % intervals.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from medsynth.classify.scoring import patient_ids, score_and_write
from medsynth.data.readers import IMAGE_SUFFIXES, image_suffix
from medsynth.data.splits import SPLITS
from medsynth.errors import InputError, refuse_output_inside
from medsynth.fileio import read_json

logger = logging.getLogger(__name__)


def load_model_info(model_path: str | os.PathLike) -> dict:
    """The sidecar ``<model_path>.json`` that train.yaml writes next to the network (classes, threshold ...)."""
    path = Path(str(model_path) + ".json")
    if not path.is_file():
        raise InputError(path, "not found: train the classifier bundle first (it writes the network and this file "
                               "with its classes and decision threshold), or set model_path")
    info = read_json(path)
    for key in ("classes", "threshold", "positive_class", "image_size"):
        if key not in info:
            raise InputError(path, f"has no {key!r}: not written by the classifier bundle")
    return info


def inference_items(datalist: dict, datalist_path: str | os.PathLike, split: str = "test",
                    folder: str | os.PathLike | None = None) -> list[dict]:
    """The items to predict: every image file in ``folder`` (sorted, no labels), else ``datalist[split]``."""
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise InputError(root, "input folder not found" if not root.exists() else "input is not a folder")
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and image_suffix(p) in IMAGE_SUFFIXES)
        if not files:
            raise InputError(root, f"holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return [{"image": str(p)} for p in files]
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    items = [dict(it) for it in datalist.get(split, [])]
    if not items:
        raise InputError(datalist_path, f"the {split} split is empty")
    return items


class PredictionWriter:
    """Collects softmax probabilities during an evaluator run and writes them when it completes.

    Writes ``<output_dir>/predictions.csv``; when every item has a label, also ``metrics.json`` and
    ``metrics.md`` (95 % intervals). The threshold is the one chosen on validation at training time; a file is
    only written complete (the CSV and JSON are renamed into place).
    """

    def __init__(self, output_dir: str | os.PathLike, items: list[dict], classes: list[str],
                 threshold: float | None, positive_class: str | None, inputs: list | None = None,
                 n_resamples: int = 1000, seed: int = 0) -> None:
        self.output_dir, self.items, self.classes = Path(output_dir), items, list(classes)
        self.threshold = threshold
        self.positive = self.classes.index(positive_class) if positive_class else None
        self.n_resamples, self.seed = n_resamples, seed
        refuse_output_inside(self.output_dir, inputs or sorted({str(Path(it["image"]).parent) for it in items}))
        self.probs: list[np.ndarray] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: self.probs.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _collect(self, engine: Engine) -> None:
        pred = engine.state.output["pred"]  # type: ignore[index]  # ignite types State.output int | None
        if isinstance(pred, list):
            pred = torch.stack(pred)
        self.probs.append(torch.softmax(pred.float(), dim=1).detach().cpu().numpy())

    def _write(self, engine: Engine) -> None:
        probs = np.concatenate(self.probs).astype(np.float64)
        if len(probs) != len(self.items):
            raise RuntimeError(f"predicted {len(probs)} images of {len(self.items)}: refusing to write a partial file")
        y = np.array([-1 if it.get("label") is None else int(it["label"]) for it in self.items])
        score_and_write(self.output_dir, self.items, y, probs, self.classes, threshold=self.threshold,
                        positive=self.positive, n_resamples=self.n_resamples, seed=self.seed,
                        groups=patient_ids(self.items), extra={"threshold_chosen_on": "validation"})
        logger.info("wrote predictions of %d images to %s", len(probs), self.output_dir)
