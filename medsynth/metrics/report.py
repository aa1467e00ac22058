"""Writing the evaluation report: ``report.json`` (everything) and ``report.md`` (tables for a human)."""

from __future__ import annotations

import os
from pathlib import Path

from medsynth.fileio import atomic_write_json, atomic_write_text

QUALITY_COLUMNS = (("fid", "FID"), ("kid", "KID"), ("precision", "precision"), ("recall", "recall"),
                   ("density", "density"), ("coverage", "coverage"))


def write_report(report: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` (atomically); returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = atomic_write_json(out_dir / "report.json", report, indent=1, default=_jsonable)
    md_path = atomic_write_text(out_dir / "report.md", markdown(report))
    return json_path, md_path


def _jsonable(value: object) -> object:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def fmt(metric: dict | None, digits: int = 4) -> str:
    """``value [low, high]`` of a report entry, or ``—`` (with the reason) when it was not computed."""
    if not metric or metric.get("value") is None:
        return "—" if not metric or not metric.get("note") else f"— ({metric['note']})"
    text = f"{metric['value']:.{digits}g}"
    if metric.get("interval"):
        low, high = metric["interval"]
        text += f" [{low:.{digits}g}, {high:.{digits}g}]"
    return text


def markdown(report: dict) -> str:
    """The human-readable report."""
    s = report["settings"]
    lines = [
        "# Synthetic-image evaluation", "",
        f"- **Extractor:** {report['extractor']}",
        f"- **Preprocessing:** {report['preprocessing']['mode']} — {report['preprocessing']['filter']}; "
        f"window {report['preprocessing']['window']}",
        f"- **Real reference:** {report['inputs']['real_reference']}",
        f"- **Synthetic:** {report['inputs']['synthetic']}",
        *_role_lines(report.get("roles", {})),
        f"- **Intervals:** {int(100 * s['confidence'])}% bootstrap ({s['bootstrap']} resamples; FID and IS: "
        "value ± z·SE, others percentile), "
        f"seed {s['seed']}; KID on full sets ({s['kid_subsets']}-subset mean beside it); "
        f"precision/recall k = {s['pr_k']}, "
        f"density/coverage k = {s['prdc_k']}",
        "", "## Quality", "",
        "Real-vs-real FID: between two random halves of the real reference, i.e. at half its n, so above the "
        "floor at the FID's own n. A FID near it means the synthetic images are about as close to the real "
        "ones as real images are to each other. Compare FIDs only at equal n.", "",
        "| set | n real | n synthetic | " + " | ".join(t for _, t in QUALITY_COLUMNS)
        + " | real-vs-real FID (n per half) | IS synthetic | IS real |",
        "|---" * (len(QUALITY_COLUMNS) + 6) + "|",
    ]
    rows = [*report["classes"].items(), ("**overall**", report["overall"])]
    lines += [_quality_row(name, m) for name, m in rows]
    if "intra_class_fid" in report["overall"]:
        intra = fmt(report["overall"]["intra_class_fid"])
        lines += ["", f"Intra-class FID (mean of the per-class FIDs): {intra}"]
    lines += ["", "## Diversity: mean pairwise MS-SSIM (higher = more alike; compare with real)", "",
              "| set | synthetic | real | pairs | size | scale weights |", "|---|---|---|---|---|---|"]
    lines += [_diversity_row(name, m["ms_ssim"]) for name, m in rows]
    lines += ["", *_memorization_lines(report["memorization"])]
    notes = report.get("notes", []) + report.get("class_notes", [])
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    lines += ["", "How to read these figures: `docs/metrics.md` in the medsynth repository.", ""]
    return "\n".join(lines)


def _role_lines(roles: dict) -> list[str]:
    """One line per real role: which input and split the reference and the audit's two sides used."""
    lines = []
    for role, used in roles.items():
        where = "not used" if used is None else \
            f"{used['input']}" + (f", split {used['split']}" if used.get("split") else " (folder)") + \
            f", {used['images']} images"
        lines.append(f"- **Role {role}:** {where}")
    return lines


def _quality_row(name: str, m: dict) -> str:
    lower = m["fid_real_vs_real"]
    halves = lower["n"].get("real_halves")
    inception = m.get("inception_score", {})
    cells = [name, str(m["fid"]["n"]["real"]), str(m["fid"]["n"]["synthetic"]),
             *(fmt(m[key]) for key, _ in QUALITY_COLUMNS),
             f"{fmt(lower)} ({halves})", fmt(inception.get("synthetic")), fmt(inception.get("real"))]
    return "| " + " | ".join(cells) + " |"


def _diversity_row(name: str, ms_ssim: dict) -> str:
    syn, real = ms_ssim["synthetic"], ms_ssim["real"]
    weights = ", ".join(f"{w:.3f}" for w in syn.get("scale_weights", []))
    cells = [name, fmt(syn), fmt(real), str(syn.get("pairs", "—")), str(syn.get("size", "—")), weights]
    return "| " + " | ".join(cells) + " |"


def _memorization_lines(memo: dict) -> list[str]:
    lines = ["## Memorization audit", ""]
    if "skipped" in memo:
        return lines + [f"Skipped: {memo['skipped']}"]
    flagged, median = memo["fraction_flagged"], memo["median_distance"]
    n = flagged["n"]
    lines += [
        f"Synthetic images nearer to a training image than percentile {flagged['percentile']:g} of the "
        f"held-out real images' distances (< {flagged['threshold']:.4g}): **{fmt(flagged)}** of "
        f"{n['synthetic']} (about {flagged['percentile']:g}% expected by chance; {n['training']} training, "
        f"{n['heldout']} held-out images).",
        "", "By class: " + ", ".join(f"{c} {v:.3g}" for c, v in memo["fraction_flagged_by_class"].items()),
        f"Median nearest-training distance: synthetic {median['synthetic_to_training']:.4g}, "
        f"held-out real {median['heldout_to_training']:.4g}.",
        "", f"Closest pairs, closest first (each pair: synthetic left, nearest training image right): "
        f"`{memo['grid']}`", "",
        "| rank | synthetic | nearest training image | distance | flagged |", "|---|---|---|---|---|",
    ]
    for rank, pair in enumerate(memo["closest_pairs"], start=1):
        flag = "yes" if pair["flagged"] else ""
        cells = [str(rank), pair["synthetic"], pair["training"], f"{pair['distance']:.4g}", flag]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
