"""Do a conditional generator's classes look different? A classifier trained on real images judges the fakes.

Loads a trained bundle's ``models/model.pt`` through the bundle's own ``inference.yaml`` (same network, same
datalist), generates ``--n`` images per class from seeded latents, and asks a scikit-learn logistic regression
trained on the *real* training split (standardized ``--side`` x ``--side`` pixels of the same [-1, 1] tensors the
GAN saw, class-weighted so that the minority is not ignored) which class each fake belongs to. It prints:

* the classifier on the real validation split (per-class recall, balanced accuracy): how well pixels separate
  the real classes at all, the ceiling for what follows;
* the fraction of the fakes of each class that it assigns to each class: a generator whose rows differ gives a
  diagonal well above chance (1 / K); one that ignores its label gives rows like the class prior.

This is a sanity check of conditioning on the demo sets, not a quality metric (use ``medsynth
evaluate-synthetic``). Example, after ``python -m monai.bundle run --config_file bundles/cdcgan/configs/train.yaml``::

    python benchmarks/gan_class_fidelity.py --bundle cdcgan
    python benchmarks/gan_class_fidelity.py --bundle acgan --model /path/model.pt --datalist /data/datalist.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medsynth.export import latent_vector

REPO = Path(__file__).resolve().parents[1]


def _pixels(images: torch.Tensor, side: int) -> np.ndarray:
    """``(N, C, H, W)`` in [-1, 1] -> ``(N, C * side * side)`` area-averaged pixels."""
    return F.adaptive_avg_pool2d(images.float(), side).flatten(1).numpy()


def _real(data, split: str, transform, side: int) -> tuple[np.ndarray, np.ndarray]:
    items = data.datalist[split]
    images = torch.stack([transform(dict(it))["image"] for it in items])
    return _pixels(images, side), np.array([it["label"] for it in items])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="cdcgan", help="bundle folder name under bundles/")
    parser.add_argument("--model", help="generator weights (default bundles/<bundle>/models/model.pt)")
    parser.add_argument("--datalist", help="the datalist the generator was trained on (default: the demo)")
    parser.add_argument("--n", type=int, default=200, help="fakes per class")
    parser.add_argument("--side", type=int, default=32, help="pixels per side for the classifier")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    model = Path(args.model or REPO / "bundles" / args.bundle / "models" / "model.pt")
    config = ConfigParser()
    config.read_config(str(REPO / "bundles" / args.bundle / "configs" / "inference.yaml"))
    config["bundle_root"] = str(REPO / "bundles" / args.bundle)
    config["model_path"] = str(model)
    if args.datalist:
        config["datalist"] = args.datalist
    data = config.get_parsed_content("data")
    info = config.get_parsed_content("generator_info")  # the architecture, from model.pt.json
    network = config.get_parsed_content("network").cpu().eval()
    network.load_state_dict(torch.load(model, map_location="cpu", weights_only=True))
    if not info.conditional or len(info.generated_classes) < 2:
        raise SystemExit(f"{args.bundle} generates one class; this check needs a class-conditional generator")
    k = len(info.generated_classes)

    transform = data.transform(info.image_size)
    x_train, y_train = _real(data, "training", transform, args.side)
    x_val, y_val = _real(data, "validation", transform, args.side)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    classifier.fit(x_train, y_train)
    predicted = classifier.predict(x_val)
    print(f"{args.bundle}: {model} ({k} classes {data.classes}), classifier on {len(y_train)} real training images")
    recalls = recall_score(y_val, predicted, labels=list(range(k)), average=None, zero_division=0)
    print(f"real validation (n={len(y_val)}): balanced accuracy {balanced_accuracy_score(y_val, predicted):.3f}, "
          "recall " + ", ".join(f"{c} {r:.3f}" for c, r in zip(data.classes, recalls, strict=True)))

    latent = info.latent_size
    print(f"fakes ({args.n} per class) assigned by the real-trained classifier; rows: generated class")
    print("  " + " ".join(f"{c:>12}" for c in ["generated"] + data.classes))
    diagonal = []
    for label in range(k):
        z = torch.stack([latent_vector(args.seed, label * args.n + i, latent) for i in range(args.n)])
        with torch.no_grad():
            fakes = network(z, torch.full((args.n,), label, dtype=torch.long))
        share = np.bincount(classifier.predict(_pixels(fakes, args.side)), minlength=k) / args.n
        diagonal.append(share[label])
        print("  " + " ".join(f"{v:>12}" for v in [data.classes[label]] + [f"{s:.3f}" for s in share]))
    print(f"mean diagonal {np.mean(diagonal):.3f} (chance {1 / k:.3f}); {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
