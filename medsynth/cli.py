"""The ``medsynth`` command. Every verb has ``--help``; heavy imports happen only when a verb runs.

Bad input ends with ``medsynth: error: <file>: <reason>`` and exit status 2, not a traceback
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from medsynth import __version__

DEFAULT_WINDOW = "-100,200"


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def _fractions(text: str) -> tuple[float, float, float]:
    from medsynth.data.splits import parse_fractions

    try:
        return parse_fractions(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _add_split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (gets datalist.json, and skipped.csv when --skip-bad skipped files); "
                        "must not lie inside an input folder")
    p.add_argument("--classes", type=_names, default=None,
                   help="comma-separated class names in label-index order, e.g. benign,malignant")
    p.add_argument("--task", default=None, help="task name stored in the datalist")
    p.add_argument("--split", default="0.7,0.15,0.15", type=_fractions,
                   help="training,validation,test fractions; splits are stratified and grouped by patient")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (same seed, same split)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable or invalid files and list them in OUT/skipped.csv instead of stopping")


def _demo_data(args: argparse.Namespace) -> Path:
    from medsynth.demo.writer import existing_demo, write_demo_dataset

    demo = existing_demo(args.task, args.out, n=args.n, seed=args.seed, difficulty=args.difficulty)
    if demo is not None:
        print(f"{demo.root} already holds this {args.task} demo set (same task, n, seed and difficulty); kept it")
        return demo.root
    demo = write_demo_dataset(args.task, args.out, n=args.n, seed=args.seed, difficulty=args.difficulty)
    counts = ", ".join(f"{k} {v}" for k, v in demo.counts.items())
    print(f"wrote the {args.task} demo set to {demo.root} ({counts}; {demo.n_patients} patients)")
    return demo.root


def _datalist_folders(args: argparse.Namespace) -> Path:
    from medsynth.data.builders import datalist_from_folders

    return datalist_from_folders(
        args.root, args.out, classes=args.classes, task=args.task or "custom", modality=args.modality,
        fractions=args.split, seed=args.seed, skip_bad=args.skip_bad, patient_regex=args.patient_regex)


def _datalist_csv(args: argparse.Namespace) -> Path:
    from medsynth.data.builders import datalist_from_csv

    return datalist_from_csv(
        args.csv, args.image_root, args.out, image_col=args.image_col, label_col=args.label_col,
        patient_col=args.patient_col, classes=args.classes, task=args.task or "custom",
        modality=args.modality, fractions=args.split, seed=args.seed, skip_bad=args.skip_bad)


def _datalist_volumes(args: argparse.Namespace) -> Path:
    from medsynth.data.roi import datalist_from_volumes

    return datalist_from_volumes(
        args.csv, args.out, classes=args.classes, roi_mm=args.roi_mm, window=_floats(args.window),
        out_size=args.size, task=args.task or "liver", fractions=args.split, seed=args.seed,
        skip_bad=args.skip_bad)


def _report_datalist(run: Callable[[argparse.Namespace], Path]) -> Callable[[argparse.Namespace], Path]:
    def wrapped(args: argparse.Namespace) -> Path:
        from medsynth.data.datalist import load_datalist
        from medsynth.data.splits import split_summary, summary_lines

        path = run(args)
        for line in summary_lines(split_summary(load_datalist(path))):
            print(line)
        skipped = Path(path).parent / "skipped.csv"
        if skipped.exists():
            print(f"skipped files are listed in {skipped}")
        print(f"wrote {path}")
        return path

    return wrapped


def _baselines(args: argparse.Namespace) -> Path:
    from medsynth.classify.baselines import BASELINES, FEATURES, run_baselines

    run_baselines(args.datalist, args.out, names=args.names or BASELINES, features=args.features or FEATURES,
                  image_size=args.image_size, pca_components=args.pca_components, seed=args.seed,
                  n_resamples=args.n_resamples)
    print(f"wrote {args.out / 'baselines.md'}")
    return args.out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medsynth", description="GAN-based synthetic data augmentation for medical image classification.")
    parser.add_argument("--version", action="version", version=f"medsynth {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    _add_demo_data(verbs)
    _add_datalist(verbs)
    _add_baselines(verbs)

    from medsynth.metrics.commands import register as register_metrics

    register_metrics(verbs)
    return parser


def _add_demo_data(verbs) -> None:
    p = verbs.add_parser("demo-data", help="write a seeded phantom data set (skin, ct or xray)",
                         description="Write a seeded, class-labelled phantom data set as real files "
                                     "(PNG+CSV for skin; NIfTI, masks and DICOM series for ct; DICOM and PNG "
                                     "for xray). The same seed gives the same files, byte for byte.")
    p.add_argument("--task", required=True, choices=["skin", "ct", "xray"])
    p.add_argument("--out", required=True, type=Path, help="new or empty output folder")
    p.add_argument("--n", type=int, default=None, help="number of images (ct: lesions); default per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", type=float, default=None,
                   help="0 (classes easy to tell apart) .. 1 (strong overlap); default per task")
    p.set_defaults(func=_demo_data)


def _add_datalist(verbs) -> None:
    dl = verbs.add_parser("datalist", help="build a datalist JSON (splits, classes, patient ids)",
                          description="Build a datalist JSON from class folders, a CSV manifest, or CT volumes "
                                      "with lesion masks or centroids.")
    sources = dl.add_subparsers(dest="source", required=True, metavar="SOURCE")

    p = sources.add_parser("folders", help="one sub-folder per class: ROOT/<class>/<image>",
                           description="Datalist from class folders ROOT/<class>/<image files>.")
    p.add_argument("root", type=Path)
    p.add_argument("--modality", default="other", choices=["dermoscopy", "ct", "xray", "other"])
    p.add_argument("--patient-regex", default=None,
                   help="regular expression whose first group is the patient id in a file name "
                        "(DICOM files use their PatientID tag)")
    _add_split_args(p)
    p.set_defaults(func=_report_datalist(_datalist_folders))

    p = sources.add_parser("csv", help="a CSV manifest of image path or id, label and patient id",
                           description="Datalist from a CSV manifest (e.g. the ISIC metadata CSV).")
    p.add_argument("csv", type=Path)
    p.add_argument("--image-root", required=True, type=Path, help="folder the image paths or ids refer to")
    p.add_argument("--image-col", default="image", help="column with an image path or a bare image id")
    p.add_argument("--label-col", default="label", help="column with a class name or a class index")
    p.add_argument("--patient-col", default=None, help="column with the patient id")
    p.add_argument("--modality", default="other", choices=["dermoscopy", "ct", "xray", "other"])
    _add_split_args(p)
    p.set_defaults(func=_report_datalist(_datalist_csv))

    p = sources.add_parser("volumes", help="CT volumes with lesion masks or centroids -> 2D lesion ROIs",
                           description="Extract a 2D ROI around every lesion of CT volumes (NIfTI or DICOM series "
                                       "folders) listed in a CSV, cache the ROIs (in HU) under OUT/rois, and "
                                       "write a datalist. CSV columns: volume,mask,label,patient_id[,mask_value] "
                                       "or volume,label,patient_id,centroid_x_mm,centroid_y_mm,centroid_z_mm"
                                       "[,diameter_mm] (LPS patient coordinates).")
    p.add_argument("csv", type=Path)
    p.add_argument("--roi-mm", type=float, default=None,
                   help="side of the square ROI in mm (default: adaptive, about twice the lesion size)")
    p.add_argument("--window", default=DEFAULT_WINDOW, help="HU window LOW,HIGH recorded for display/normalising")
    p.add_argument("--size", type=int, default=64, help="output ROI size in pixels")
    _add_split_args(p)
    p.set_defaults(func=_report_datalist(_datalist_volumes))


def _add_baselines(verbs) -> None:
    p = verbs.add_parser("baselines", help="classic machine-learning baselines (LR, SVM, RF) on a datalist",
                         description="The thesis' classic baselines through scikit-learn: logistic regression, SVM "
                                     "and random forest on raw pixels or PCA features, trained on the training "
                                     "split (class-balanced), thresholded on validation, scored on test with 95%% "
                                     "intervals, in the classifier bundle's format.")
    p.add_argument("datalist", type=Path, help="a medsynth datalist JSON")
    p.add_argument("--out", required=True, type=Path, help="output folder (not inside the data)")
    p.add_argument("--names", type=_names, default=None,
                   help="comma-separated subset of logistic_regression,svm,random_forest (default: all)")
    p.add_argument("--features", type=_names, default=None, help="pixels,pca (default: both)")
    p.add_argument("--image-size", type=int, default=32, help="images are resized to this square size")
    p.add_argument("--pca-components", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples of every interval")
    p.set_defaults(func=_baselines)


def _quiet_optional_codec_notices() -> None:
    """MONAI announces on every reader set-up that the optional GPU codec (nvImageCodec) is absent;
    the pydicom decoders it falls back to are the ones medsynth uses, so this is noise for users."""
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _quiet_optional_codec_notices()
    from medsynth.errors import InputError

    try:
        args.func(args)
    except (InputError, ValueError, FileExistsError, FileNotFoundError, NotADirectoryError) as e:
        if args.debug:
            raise
        print(f"medsynth: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
