"""Seeded procedural phantoms with class semantics: dermoscopy lesions and bone radiographs.

Each phantom is a function of a ``np.random.Generator`` and returns the image plus a params dict of plain
numbers, so the same generator state always gives the same image. ``difficulty`` in ``[0, 1]`` moves the
abnormal class towards the normal one (0: textbook cases, far apart; 1: skin lesions share the benign
parameter distribution, fractures are barely visible hairlines) and raises the nuisances (hairs, noise,
blur) shared by both classes. :data:`DEFAULT_DIFFICULTY` leaves a plain classifier well short of perfect
minority recall on the demo sets, so augmentation has room to help (``benchmarks/demo_difficulty.py``).
The CT liver phantom lives in :mod:`medsynth.demo.phantoms_ct`. numpy/scipy only: no torch, no downloads.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

DEFAULT_DIFFICULTY = 0.3  # tuned with benchmarks/demo_difficulty.py: skin minority recall ~0.5-0.6

# Dermoscopy palette (RGB in [0, 1]), ordered from the most benign-looking to the most suspicious colour,
# so a lesion with n colours uses the first n: light brown, dark brown, red-brown, black, blue-grey.
SKIN_PALETTE = np.array(
    [[0.66, 0.46, 0.31], [0.43, 0.27, 0.17], [0.56, 0.27, 0.21], [0.16, 0.12, 0.11], [0.38, 0.42, 0.50]]
)
SKIN_TONES = np.array([[0.93, 0.76, 0.66], [0.86, 0.64, 0.52], [0.74, 0.53, 0.40], [0.96, 0.82, 0.74]])


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered white noise of ``shape`` (correlation length ``sigma`` px).

    Wide fields are drawn on a grid ``sigma // 2.5`` times coarser and linearly upsampled: same look, far
    fewer filter taps.
    """
    factor = max(1, int(sigma // 2.5))
    small = tuple(-(-n // factor) for n in shape)
    field = gaussian_filter(rng.standard_normal(small), sigma / factor, mode="wrap")
    if factor > 1:
        field = zoom(field, factor, order=1, grid_mode=True, mode="grid-wrap")
        field = field[tuple(slice(0, n) for n in shape)]
    return (field - field.mean()) / (field.std() + 1e-12)


def abnormality_shift(rng: np.random.Generator, difficulty: float) -> float:
    """Fraction ``t`` in ``[0, 1]`` by which an abnormal case moves towards the normal class.

    ``t = u ** ((1 - d) / d)`` with ``u`` uniform has mean ``d``: 0 keeps every case textbook, 1 makes the
    abnormal parameters follow the normal distribution exactly.
    """
    d = float(np.clip(difficulty, 0.0, 1.0))
    if d <= 0.0:
        return 0.0
    if d >= 1.0:
        return 1.0
    return float(rng.uniform() ** ((1.0 - d) / d))


def _skin_atypia(rng: np.random.Generator, malignant: bool, difficulty: float) -> float:
    """Latent ABCD atypia in ``[0, 1]``: benign ~0.15, textbook melanoma ~0.8, mixed by ``difficulty``."""
    benign = 0.6 * rng.beta(2.0, 6.0)
    if not malignant:
        return float(benign)
    typical = 0.5 + 0.5 * rng.beta(5.0, 2.0)
    t = abnormality_shift(rng, difficulty)
    return float((1.0 - t) * typical + t * benign)


def _abcd_params(rng: np.random.Generator, atypia: float, size: int) -> dict:
    """Asymmetry, Border, Colour and Diameter parameters; each criterion jitters the atypia on its own."""
    a, b, c, d = np.clip(atypia + rng.normal(0.0, 0.08, 4), 0.0, 1.0)
    k_max = int(3 + round(13 * b))
    ks = np.arange(2, k_max + 1)
    amplitude = (0.015 + 0.11 * b) * np.abs(rng.normal(1.0, 0.3, ks.size)) / np.sqrt(ks - 1)
    return {
        "atypia": atypia,
        "radius_px": float((0.15 + 0.15 * d + rng.normal(0.0, 0.015)) * size),
        "stretch": float(0.7 * a * rng.uniform(0.5, 1.0)),
        "stretch_angle": float(rng.uniform(0, 2 * np.pi)),
        "harmonics": ks.tolist(),
        "amplitudes": amplitude.tolist(),
        "phases": rng.uniform(0, 2 * np.pi, ks.size).tolist(),
        "border_irregularity": float(np.sqrt(np.sum(amplitude**2))),
        "n_colours": int(np.clip(1 + round(4 * c + rng.normal(0.0, 0.35)), 1, 5)),
        "edge_sigma_px": float((0.4 + 1.4 * (1.0 - b)) * size / 64),
        "centre_px": (rng.normal(0.5, 0.04, 2) * size).tolist(),
    }


def lesion_mask(params: dict, size: int) -> np.ndarray:
    """Soft star-shaped lesion mask ``(size, size)`` in ``[0, 1]`` from :func:`skin_lesion` params.

    The border is ``r(θ) = r0 (1 + Σ a_k cos(kθ + φ_k))``; a one-sided radial stretch adds asymmetry.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    cy, cx = params["centre_px"]
    theta = np.arctan2(yy - cy, xx - cx)
    r = np.hypot(yy - cy, xx - cx)
    r = r / (1.0 + params["stretch"] * np.clip(np.cos(theta - params["stretch_angle"]), 0.0, None))
    border = np.ones_like(theta)
    for k, amp, phase in zip(params["harmonics"], params["amplitudes"], params["phases"], strict=True):
        border += amp * np.cos(k * theta + phase)
    border = params["radius_px"] * np.clip(border, 0.35, None)
    return 1.0 / (1.0 + np.exp(-(border - r) / params["edge_sigma_px"]))


def _skin_background(rng: np.random.Generator, size: int, tone: np.ndarray) -> np.ndarray:
    """Skin ``(size, size, 3)``: per-image tone jitter, low-frequency blotches and fine grain."""
    base = np.clip(tone * rng.normal(1.0, 0.03, 3), 0.0, 1.0)
    low = 0.05 * smooth_field(rng, (size, size), size / 6)
    redness = 0.03 * smooth_field(rng, (size, size), size / 10)
    grain = 0.015 * smooth_field(rng, (size, size), 0.8)
    skin = base * (1.0 + low + grain)[..., None]
    skin[..., 0] += redness
    return skin


def _lesion_colour(rng: np.random.Generator, n_colours: int, size: int) -> np.ndarray:
    """Pigment ``(size, size, 3)``: a softmax mix of the first ``n_colours`` palette entries, ±4 % texture."""
    fields = np.stack([smooth_field(rng, (size, size), size / 14) for _ in range(n_colours)])
    weights = np.exp(2.5 * fields)
    weights /= weights.sum(axis=0, keepdims=True)
    palette = SKIN_PALETTE[:n_colours] * rng.normal(1.0, 0.05, (n_colours, 1))
    colour = np.einsum("khw,kc->hwc", weights, palette)
    return colour * (1.0 + 0.04 * smooth_field(rng, (size, size), 1.5))[..., None]


def _draw_hairs(rng: np.random.Generator, image: np.ndarray, n_hairs: int) -> np.ndarray:
    """Dark, slightly curved hairs about 1 px wide across ``image (H, W, 3)``."""
    size = image.shape[0]
    cover = np.zeros(image.shape[:2])
    for _ in range(n_hairs):
        start, angle = rng.uniform(0, size, 2), rng.uniform(0, np.pi)
        length, bend = rng.uniform(0.4, 1.2) * size, rng.normal(0.0, 0.15) * size
        t = np.linspace(0.0, 1.0, int(3 * length))
        direction, normal = (
            np.array([np.sin(angle), np.cos(angle)]),
            np.array([np.cos(angle), -np.sin(angle)]),
        )
        pts = start + np.outer(t * length, direction) + np.outer(bend * t * (1 - t), normal)
        pts = np.round(pts).astype(int)
        keep = np.all((pts >= 0) & (pts < size), axis=1)
        cover[pts[keep, 0], pts[keep, 1]] = 1.0
    cover = np.clip(gaussian_filter(cover, 0.5) * 2.5, 0.0, 0.85)[..., None]
    return image * (1.0 - cover) + np.array([0.18, 0.13, 0.10]) * cover


def _vignette(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Dermoscope field: radial light fall-off and a dark surround outside the lens circle."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    r = np.hypot(yy - rng.normal(0, 0.02), xx - rng.normal(0, 0.02))
    radius = rng.uniform(0.48, 0.62)
    inside = 1.0 / (1.0 + np.exp(-(radius - r) * size / 1.5))
    falloff = 1.0 - rng.uniform(0.1, 0.3) * (r / radius) ** 2
    return image * (falloff * inside)[..., None] + 0.03 * (1.0 - inside)[..., None]


def skin_lesion(
    rng: np.random.Generator,
    malignant: bool,
    size: int = 128,
    difficulty: float = DEFAULT_DIFFICULTY,
    skin_tone: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Dermoscopy-like RGB lesion ``(size, size, 3)`` uint8, benign or malignant by the ABCD criteria.

    Malignant lesions are larger (Diameter), stretched to one side (Asymmetry), with more and stronger
    border harmonics and a sharper edge (Border) and 3-5 palette colours instead of 1-2 browns (Colour).
    ``skin_tone`` (RGB in [0, 1]) is shared by a patient's lesions; drawn from :data:`SKIN_TONES` if None.
    """
    tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] if skin_tone is None else np.asarray(skin_tone)
    params = _abcd_params(rng, _skin_atypia(rng, malignant, difficulty), size)
    mask = lesion_mask(params, size)[..., None]
    skin = _skin_background(rng, size, tone)
    darkness = rng.uniform(0.75, 1.1)
    image = skin * (1.0 - mask) + _lesion_colour(rng, params["n_colours"], size) * darkness * mask
    d = float(np.clip(difficulty, 0.0, 1.0))
    params.update(n_hairs=int(rng.poisson(0.5 + 4.0 * d)), vignette=bool(rng.uniform() < 0.3 + 0.5 * d))
    image = _draw_hairs(rng, image, params["n_hairs"])
    if params["vignette"]:
        image = _vignette(rng, image)
    image = image + rng.normal(0.0, 0.01 + 0.02 * d, image.shape)
    params.update(malignant=bool(malignant), difficulty=d, darkness=float(darkness))
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), params


def chord_length(u: np.ndarray, radius: float | np.ndarray) -> np.ndarray:
    """Length of a ray at perpendicular distance ``u`` through a cylinder of ``radius``: ``2√(R²−u²)``."""
    return 2.0 * np.sqrt(np.clip(np.asarray(radius) ** 2 - u**2, 0.0, None))


def bone_anatomy(rng: np.random.Generator, size: int = 128) -> dict:
    """Per-patient long-bone geometry in px: soft-tissue, cortical and medullary radii, and taper."""
    bone = rng.uniform(0.085, 0.13) * size
    return {
        "soft_radius_px": float(bone * rng.uniform(2.4, 3.4)),
        "bone_radius_px": float(bone),
        "canal_ratio": float(rng.uniform(0.6, 0.75)),
        "taper": float(rng.uniform(-0.35, 0.35)),
    }


def _fracture_params(rng: np.random.Generator, size: int, difficulty: float) -> dict:
    """Oblique fracture: position along the shaft, obliquity, lucent gap, lateral offset (px), angulation
    of the distal fragment and soft-tissue swelling; ``difficulty`` moves the last four towards zero."""
    t = abnormality_shift(rng, difficulty)
    scale = size / 128

    def lerp(obvious: tuple[float, float], subtle: tuple[float, float]) -> float:
        return float((1 - t) * rng.uniform(*obvious) + t * rng.uniform(*subtle))

    return {
        "fracture_v_px": float(rng.uniform(-0.25, 0.25) * size),
        "fracture_angle": float(np.deg2rad(rng.uniform(-45, 45))),
        "gap_px": lerp((1.0, 3.0), (0.0, 0.6)) * scale,
        "offset_px": lerp((1.5, 4.0), (0.0, 0.8)) * scale * rng.choice([-1, 1]),
        "angulation": float(np.deg2rad(lerp((3.0, 12.0), (0.0, 2.0)) * rng.choice([-1, 1]))),
        "swelling": lerp((0.08, 0.2), (0.0, 0.03)),
    }


def _attenuation(u: np.ndarray, v: np.ndarray, anatomy: dict, fracture: dict | None, size: int) -> np.ndarray:
    """Line integral Σ μ·chord over soft tissue, cortical shell and (minus) canal, fracture applied.

    ``u``/``v`` are pixel coordinates across/along the shaft; the distal fragment (beyond the fracture
    plane) is rotated by the angulation about the fracture point, then shifted sideways by the offset.
    """
    soft, keep = anatomy["soft_radius_px"] * np.ones_like(u), np.ones_like(u)
    u0 = u
    if fracture is not None:
        v0, angle, tilt = fracture["fracture_v_px"], fracture["fracture_angle"], fracture["angulation"]
        s = (v - v0) * np.cos(angle) - u * np.sin(angle)
        distal_u = u * np.cos(tilt) + (v - v0) * np.sin(tilt) - fracture["offset_px"]
        distal_v = v0 - u * np.sin(tilt) + (v - v0) * np.cos(tilt)
        u, v = np.where(s > 0, distal_u, u), np.where(s > 0, distal_v, v)
        keep = np.clip(np.abs(s) - fracture["gap_px"] / 2 + 0.5, 0.0, 1.0)
        soft = soft * (1.0 + fracture["swelling"] * np.exp(-(((v - v0) / (0.12 * size)) ** 2) / 2))
    outer = anatomy["bone_radius_px"] * (1.0 + anatomy["taper"] * v / size)
    cortex = 0.05 * chord_length(u, outer) - 0.04 * chord_length(u, outer * anatomy["canal_ratio"])
    return (0.0045 * chord_length(u0, soft) + keep * cortex) * 128 / size


def bone_radiograph(
    rng: np.random.Generator,
    fracture: bool,
    size: int = 128,
    difficulty: float = DEFAULT_DIFFICULTY,
    anatomy: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Long-bone radiograph ``(size, size)`` float32 in ``[0, 1]`` (display sense: bone bright).

    Beer–Lambert projection ``1 − exp(−Σ μ·chord)`` of a soft-tissue cylinder, cortical shell and medullary
    canal at a random angle and position, then blur, gain and noise. ``fracture`` adds an oblique lucent gap,
    a lateral offset and angulation of the distal fragment and soft-tissue swelling; ``difficulty`` shrinks
    them all and raises blur and noise. The same generator state gives the same view with and without the
    fracture. ``anatomy`` (from :func:`bone_anatomy`) is shared by a patient's images.
    """
    anatomy = bone_anatomy(rng, size) if anatomy is None else anatomy
    d = float(np.clip(difficulty, 0.0, 1.0))
    angle, centre = rng.uniform(-0.45, 0.45), rng.normal(0.5, 0.06, 2) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    py, px = yy - centre[0], xx - centre[1]
    u, v = px * np.cos(angle) - py * np.sin(angle), px * np.sin(angle) + py * np.cos(angle)
    drawn = _fracture_params(rng, size, d)  # drawn either way: one seed gives a matched intact/fractured pair
    frac = drawn if fracture else None
    image = 1.0 - np.exp(-_attenuation(u, v, anatomy, frac, size))
    blur = rng.uniform(0.5, 0.9) + 0.8 * d
    image = gaussian_filter(image, blur * size / 128)
    image = image * rng.uniform(0.8, 1.0) + 0.05 * rng.uniform() * (xx / size) + rng.uniform(0.02, 0.08)
    image = image + rng.normal(0.0, 0.01 + 0.025 * d, image.shape)
    params = dict(anatomy, angle=float(angle), centre_px=centre.tolist(), blur_px=float(blur), difficulty=d)
    params.update(fracture=bool(fracture), **(frac or {}))
    return np.clip(image, 0.0, 1.0).astype(np.float32), params
