"""Seeded abdominal CT phantom in Hounsfield units with liver lesions: cyst, metastasis, hemangioma.

Arrays are ``(Z, Y, X)`` = (slice, row, column). Coordinates follow DICOM LPS: +x towards the patient's
left (image right), +y posterior (image down), +z superior; slice 0 is the most inferior. ``spacing`` and
``origin`` are ``(x, y, z)`` in mm, as in ITK, and the volume is centred on the patient-coordinate origin.
Portal-venous phase: liver ~100 HU, blood pool 150-180 HU. numpy/scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from medsynth.demo.phantoms import DEFAULT_DIFFICULTY, abnormality_shift, smooth_field

LIVER_CLASSES = ("cyst", "metastasis", "hemangioma")
CT_SHAPE = (24, 128, 128)
CT_SPACING = (2.5, 2.5, 5.0)
_MIMICS = {"metastasis": "hemangioma", "hemangioma": "metastasis"}
_RADIUS_MM = {"cyst": (7.0, 18.0), "metastasis": (11.0, 26.0), "hemangioma": (11.0, 26.0)}


def ct_origin(shape: Sequence[int], spacing: Sequence[float]) -> tuple[float, float, float]:
    """LPS position ``(x, y, z)`` mm of voxel ``[0, 0, 0]`` that centres a ``(Z, Y, X)`` volume on 0."""
    z, y, x = shape
    return (-(x - 1) * spacing[0] / 2, -(y - 1) * spacing[1] / 2, -(z - 1) * spacing[2] / 2)


def _grid_mm(shape: Sequence[int], spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable LPS coordinates ``z (Z,1,1)``, ``y (1,Y,1)``, ``x (1,1,X)`` in mm."""
    ox, oy, oz = ct_origin(shape, spacing)
    z = oz + spacing[2] * np.arange(shape[0])[:, None, None]
    y = oy + spacing[1] * np.arange(shape[1])[None, :, None]
    x = ox + spacing[0] * np.arange(shape[2])[None, None, :]
    return z, y, x


def _ellipsoid(z, y, x, centre, axes) -> np.ndarray:
    """Boolean ellipsoid with ``centre`` and semi-``axes`` given as ``(x, y, z)`` mm."""
    return sum(((c - m) / a) ** 2 for c, m, a in zip((x, y, z), centre, axes, strict=True)) <= 1.0


def _body(rng: np.random.Generator, z, y, x, hu: np.ndarray) -> tuple[np.ndarray, float]:
    """Fill air, subcutaneous fat, muscle wall and abdominal soft tissue; return the cavity and its depth."""
    ax = min(rng.uniform(132, 150), x.max() - 6)
    ay = min(rng.uniform(95, 115), y.max() - 6)
    fat, wall = rng.uniform(10, 24), rng.uniform(7, 11)
    hu[:] = -1000.0
    hu[_ellipsoid(z, y, x, (0, 0, 0), (ax, ay, 1e9))] = rng.uniform(-110, -90)
    hu[_ellipsoid(z, y, x, (0, 0, 0), (ax - fat, ay - fat, 1e9))] = rng.uniform(40, 55)
    cavity = _ellipsoid(z, y, x, (0, 0, 0), (ax - fat - wall, ay - fat - wall, 1e9))
    hu[cavity] = -60 + 90 * (smooth_field(rng, hu.shape, 3.0)[cavity] > -0.3)  # bowel and mesenteric fat
    for _ in range(rng.integers(4, 9)):
        centre = (rng.uniform(-60, 70), rng.uniform(-70, 10), rng.uniform(-60, 20))
        hu[_ellipsoid(z, y, x, centre, rng.uniform(4, 11, 3))] = -950.0  # bowel gas
    return cavity, ay - fat - wall


def _spine_and_vessels(rng: np.random.Generator, z, y, x, hu: np.ndarray, depth: float) -> None:
    """Vertebra (cortex, cancellous bone, discs, canal, posterior arch), paraspinal muscle, aorta and IVC."""
    yc, r = depth - rng.uniform(32, 40), rng.uniform(17, 21)
    for side in (-1, 1):  # paraspinal muscles
        hu[_ellipsoid(z, y, x, (side * 30, yc + 35, 0), (22, 20, 1e9))] = rng.uniform(45, 60)
    hu[_ellipsoid(z, y, x, (0, yc + r + 16, 0), (10, 22, 1e9))] = rng.uniform(450, 650)  # posterior arch
    hu[_ellipsoid(z, y, x, (0, yc, 0), (r, 0.85 * r, 1e9))] = rng.uniform(700, 1000)
    cancellous = _ellipsoid(z, y, x, (0, yc, 0), (r - 2.5, 0.85 * r - 2.5, 1e9))
    disc = ((z + rng.uniform(0, 32)) % 32.0) < 7.0  # intervertebral discs every ~32 mm
    hu[cancellous] = np.broadcast_to(np.where(disc, 80.0, rng.uniform(200, 260)), hu.shape)[cancellous]
    hu[_ellipsoid(z, y, x, (0, yc + r + 8, 0), (8, 7, 1e9))] = 15.0  # spinal canal
    hu[_ellipsoid(z, y, x, (rng.uniform(12, 20), yc - r - 10, 0), (11, 11, 1e9))] = rng.uniform(150, 180)
    hu[_ellipsoid(z, y, x, (rng.uniform(-28, -20), yc - r - 8, 0), (12, 9, 1e9))] = rng.uniform(120, 150)
    for side, zc in ((-1, rng.uniform(-45, -30)), (1, rng.uniform(-35, -20))):
        centre = (side * rng.uniform(55, 65), yc + 5, zc)
        hu[_ellipsoid(z, y, x, centre, (26, 28, 48))] = rng.uniform(150, 180)  # kidney cortex
        hu[_ellipsoid(z, y, x, centre, (14, 15, 32))] = rng.uniform(90, 110)  # medulla
    spleen = _ellipsoid(z, y, x, (rng.uniform(70, 85), rng.uniform(5, 25), 35), (24, 45, 45))
    hu[spleen] = rng.uniform(105, 120)


def _liver(rng: np.random.Generator, z, y, x, hu: np.ndarray, cavity: np.ndarray) -> np.ndarray:
    """Liver in the right upper abdomen: ~100 HU smooth texture and portal-phase vessels; return its mask."""
    centre = (rng.uniform(-70, -55), rng.uniform(-20, -5), rng.uniform(10, 30))
    axes = (rng.uniform(70, 85), rng.uniform(62, 75), rng.uniform(80, 95))
    lobe = sum(((c - m) / a) ** 2 for c, m, a in zip((x, y, z), centre, axes, strict=True))
    liver = (lobe + 0.15 * smooth_field(rng, hu.shape, 6.0) <= 1.0) & cavity
    texture = rng.uniform(95, 108) + 5.0 * smooth_field(rng, hu.shape, 2.0)
    f1, f2 = smooth_field(rng, hu.shape, 5.0), smooth_field(rng, hu.shape, 5.0)
    vessels = np.exp(-(f1**2 + f2**2) / (2 * 0.12**2))
    hu[liver] = (texture + rng.uniform(50, 75) * vessels)[liver]
    return liver


def _metastasis_hu(rng: np.random.Generator, rho, theta, t: float) -> np.ndarray:
    """Hypodense heterogeneous centre (30-60 HU) and an enhancing rim at 0.85 r, beaded as ``t`` grows."""
    centre_hu: float | np.ndarray
    centre_hu = (1 - t) * rng.uniform(30, 60) + t * rng.uniform(35, 50)  # towards the hemangioma body
    centre_hu = centre_hu + 7 * (1 - 0.5 * t) * smooth_field(rng, rho.shape, 1.5)
    beads = 1.0 - t * (0.5 + 0.5 * np.cos(rng.integers(4, 8) * theta + rng.uniform(0, 2 * np.pi)))
    width = 0.15 + 0.05 * t
    return centre_hu + rng.uniform(70, 100) * beads * np.exp(-(((rho - 0.85) / width) ** 2) / 2)


def _hemangioma_hu(rng: np.random.Generator, local: tuple, axes: np.ndarray, t: float) -> np.ndarray:
    """~40 HU, 4-7 separate peripheral nodules at blood pool (150-180 HU); dimmer, wider as ``t`` grows."""
    lx, ly, lz = local
    hu = np.full(
        np.broadcast_shapes(lx.shape, ly.shape, lz.shape), rng.uniform(35, 45) + 10 * t * rng.uniform()
    )
    for _ in range(rng.integers(4, 8)):
        ang, elev = rng.uniform(0, 2 * np.pi), rng.uniform(-0.4, 0.4)
        at = 0.82 * axes * np.array([np.cos(ang) * np.cos(elev), np.sin(ang) * np.cos(elev), np.sin(elev)])
        size = rng.uniform(0.15, 0.22) * axes[0] * (1 + 0.5 * t)
        blob = np.exp(-((lx - at[0]) ** 2 + (ly - at[1]) ** 2 + (lz - at[2]) ** 2) / (2 * size**2))
        blob = np.clip(1.8 * blob, 0.0, 1.0)  # flat-topped: a nodule is blood pool, not brighter
        hu = hu + (rng.uniform(150, 180) - hu) * blob * (1 - 0.5 * t)
    return hu


def _lesion_fields(rng: np.random.Generator, label: str, local: tuple, axes: np.ndarray, t: float) -> tuple:
    """HU and soft mask of one lesion on lesion-local coordinates ``local = (x, y, z)`` mm (box-shaped).

    ``t`` in [0, 1] is the lesion's shift towards the confusable look (:func:`abnormality_shift`).
    """
    lx, ly, lz = local
    theta = np.arctan2(ly / axes[1], lx / axes[0])
    rho = np.sqrt((lx / axes[0]) ** 2 + (ly / axes[1]) ** 2 + (lz / axes[2]) ** 2)
    if label == "metastasis":  # irregular margin
        harmonics = [
            rng.uniform(0.05, 0.14) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in range(2, 6)
        ]
        rho = rho / (1 + (1 - 0.7 * t) * np.sum(harmonics, axis=0))  # rounder as t grows
    edge_mm = {"cyst": 0.4, "metastasis": 2.0, "hemangioma": 1.5}[label] + 1.5 * t
    mask = 1.0 / (1.0 + np.exp(-(1.0 - rho) * axes[0] / edge_mm))
    if label == "cyst":  # water density, homogeneous, sharp
        return np.full(rho.shape, rng.uniform(0, 10) + 15 * t * rng.uniform()), mask
    if label == "metastasis":
        return _metastasis_hu(rng, rho, theta, t), mask
    return _hemangioma_hu(rng, local, axes, t), mask


def _place_lesions(rng: np.random.Generator, liver: np.ndarray, spacing, labels: Sequence[str]) -> list[dict]:
    """Non-overlapping lesion centres (voxel index) well inside the liver, with semi-axes (x, y, z) mm."""
    box = tuple(slice(max(0, a.min() - 1), a.max() + 2) for a in np.nonzero(liver))
    depth = np.zeros(liver.shape)  # distance to the liver surface (mm), computed in its padded bounding box
    depth[box] = distance_transform_edt(np.pad(liver[box], 1), sampling=spacing[::-1])[1:-1, 1:-1, 1:-1]
    placed: list[dict] = []
    for label in labels:
        for attempt in range(200):
            radius = rng.uniform(*_RADIUS_MM[label]) * (1.0 - attempt / 300)  # shrink when crowded
            flat = rng.uniform(0.7 if label != "cyst" else 0.85, 1.0)
            axes = radius * np.array([1.0, flat, rng.uniform(0.8, 1.1)])
            inside = np.argwhere(depth > radius + 4.0)
            if len(inside) == 0:
                continue
            centre = inside[rng.integers(len(inside))]
            mm = centre[::-1] * np.asarray(spacing)
            if all(np.linalg.norm(mm - p["centre_mm"]) > radius + p["axes_mm"][0] + 6 for p in placed):
                placed.append({"label": label, "centre": centre, "centre_mm": mm, "axes_mm": axes})
                break
        else:
            raise RuntimeError(f"could not place lesion {len(placed) + 1} ({label}) in the liver phantom")
    return placed


def _insert_lesion(rng, hu, mask, lesion: dict, value: int, spacing, difficulty: float) -> None:
    """Blend one lesion into ``hu (Z, Y, X)`` inside its bounding box and write ``value`` into ``mask``."""
    reach = 1.6 * lesion["axes_mm"].max()
    lo = [max(0, int(c - reach / s)) for c, s in zip(lesion["centre"], spacing[::-1], strict=True)]
    hi = [
        min(n, int(c + reach / s) + 2)
        for c, n, s in zip(lesion["centre"], hu.shape, spacing[::-1], strict=True)
    ]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    idx = [
        (np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, lesion["centre"], spacing[::-1], strict=True)
    ]
    angle = rng.uniform(0, np.pi)
    gz, gy, gx = idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]
    local = (gx * np.cos(angle) + gy * np.sin(angle), -gx * np.sin(angle) + gy * np.cos(angle), gz)
    t = abnormality_shift(rng, difficulty)
    look = lesion["label"]
    if look in _MIMICS and rng.uniform() < t / 2:  # an atypical lesion that looks like the other class
        look = _MIMICS[look]
    lesion_hu, soft = _lesion_fields(rng, look, local, lesion["axes_mm"], t)
    hu[box] = hu[box] * (1 - soft) + lesion_hu * soft
    mask[box][soft > 0.5] = value
    lesion.update(shift=t, appearance=look)


def liver_ct(
    rng: np.random.Generator,
    labels: Sequence[str],
    shape: Sequence[int] = CT_SHAPE,
    spacing: Sequence[float] = CT_SPACING,
    difficulty: float = DEFAULT_DIFFICULTY,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Abdominal CT volume ``(Z, Y, X)`` int16 HU, lesion mask ``(Z, Y, X)`` uint8 and one dict per lesion.

    Lesion ``i`` (1-based, in ``labels`` order) has mask value ``i``. Cysts are 0-10 HU, round and sharp;
    metastases irregular, 30-60 HU heterogeneous with an enhancing rim; hemangiomas ~40 HU with 4-7
    peripheral nodules at blood-pool density. Each lesion draws a shift ``t`` (mean ``difficulty``) that
    beads and rounds the metastasis, dims and widens the hemangioma nodules and softens margins, and with
    probability ``t / 2`` renders a metastasis with the hemangioma look or the reverse (recorded as
    ``appearance``), so at difficulty 1 the two are indistinguishable; cysts stay water-dense.
    """
    hu = np.zeros(tuple(shape), dtype=float)
    z, y, x = _grid_mm(shape, spacing)
    cavity, depth = _body(rng, z, y, x, hu)
    _spine_and_vessels(rng, z, y, x, hu, depth)
    liver = _liver(rng, z, y, x, hu, cavity)
    lesions = _place_lesions(rng, liver, spacing, labels)
    mask = np.zeros(hu.shape, dtype=np.uint8)
    for value, lesion in enumerate(lesions, start=1):
        _insert_lesion(rng, hu, mask, lesion, value, spacing, difficulty)
    hu = gaussian_filter(hu, (0.3, 0.7, 0.7))  # reconstruction kernel / partial volume
    noise = gaussian_filter(rng.standard_normal(hu.shape), (0.0, 0.7, 0.7))
    hu += noise / noise.std() * rng.uniform(10, 15)
    records = [
        {key: les[key] for key in ("label", "appearance", "shift")}
        | {"mask_value": v, "axes_mm": les["axes_mm"].tolist()}
        for v, les in enumerate(lesions, start=1)
    ]
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), mask, records
