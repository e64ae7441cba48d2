"""A synthetic frontal chest radiograph ("phantom"), drawn with numpy: the example image the package ships.

It is not a patient and holds no data from any dataset: a body outline, two dark lung fields, the mediastinum and
heart shadow, the spine, posterior ribs, clavicles and diaphragm domes, blurred and with a little quantum-like
noise, so that `cxrvlm interpret` has a realistic-looking input on a fresh machine. A model's reading of it means
nothing clinically.

    cxrvlm render-phantom [OUT.png]        # (re)writes the shipped src/cxrvlm/assets/phantom_chest.png
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from cxrvlm.io import to_uint8

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PHANTOM_PNG = ASSETS / "phantom_chest.png"


def example_image() -> Path:
    """Path of the shipped phantom (`phantom_chest.png`); ValueError if the package was installed without it."""
    if not PHANTOM_PNG.is_file():
        raise ValueError(f"{PHANTOM_PNG}: the example phantom is missing; run `cxrvlm render-phantom`")
    return PHANTOM_PNG


def _soft(inside: np.ndarray, edge: float) -> np.ndarray:
    """Signed 'inside' values (> 0 inside, in pixels) -> smooth 0..1 membership over `edge` pixels."""
    return np.clip(0.5 + inside / max(edge, 1e-6), 0.0, 1.0)


def _torso(x: np.ndarray, y: np.ndarray, cx: float, s: float) -> np.ndarray:
    """Neck widening into the shoulders, then the chest wall narrowing a little towards the abdomen."""
    half = 0.09 * s + 0.35 * s / (1 + np.exp(-(y - 0.14 * s) / (0.025 * s))) - 0.04 * s * np.clip(y / s - 0.5, 0, 1)
    return _soft(half - np.abs(x - cx), 0.01 * s)


def _lung(x: np.ndarray, y: np.ndarray, cx: float, side: int, s: float) -> np.ndarray:
    """One lung field: a rounded apex, a lateral wall, a medial border, a domed base with a deep costophrenic
    angle laterally. `side` -1 for the image's left (patient's right lung), +1 for the image's right."""
    top, base = 0.13 * s, 0.72 * s + (0.0 if side < 0 else 0.02 * s)  # the liver lifts the right dome
    t = np.clip((y - top) / (base - top), 0.0, 1.0)  # 0 at the apex, 1 at the base
    u = side * (x - cx)  # > 0 laterally
    lateral = 0.165 * s * np.clip(t * 2.2, 0, 1) ** 0.4 * (0.88 + 0.2 * t) - u
    medial = u + 0.09 * s * np.sqrt(np.clip(t * 3, 0, 1))
    dome = base - 0.07 * s * np.exp(-((u + 0.02 * s) / (0.09 * s)) ** 2) - y
    return _soft(np.minimum.reduce([lateral, medial, dome, y - top]), 0.006 * s)


def _ribs(x: np.ndarray, y: np.ndarray, cx: float, s: float) -> np.ndarray:
    """Posterior ribs (rising from the spine, then falling laterally) and fainter anterior ribs (falling medially),
    each a band brightest at its cortical edges."""
    out = np.zeros_like(x)
    d = np.abs(x - cx) / s
    for k in range(10):
        y0 = (0.12 + 0.052 * k) * s
        centre = y0 + (-0.15 * d + 1.5 * d ** 2) * s
        dist = np.abs(y - centre) / ((0.010 + 0.0012 * k) * s)
        band = np.exp(-dist ** 4) * (0.65 + 0.35 * np.exp(-((dist - 1.0) ** 2) * 8))
        out += band * _soft(d * s - 0.04 * s, 0.01 * s) * _soft(0.33 * s - d * s, 0.02 * s)
        front = (0.19 + 0.055 * k) * s + (0.32 - d) * 0.45 * s
        out += 0.35 * np.exp(-((y - front) / (0.009 * s)) ** 2) * (d > 0.12) * (d < 0.33)
    return out


def _clavicles(x: np.ndarray, y: np.ndarray, cx: float, s: float) -> np.ndarray:
    out = np.zeros_like(x)
    for side in (-1, 1):
        u = side * (x - cx) / s  # 0 at the midline, positive laterally
        centre = (0.185 - 0.26 * u + 0.3 * u ** 2) * s
        dist = np.abs(y - centre) / (0.013 * s)
        out += np.exp(-dist ** 4) * (0.7 + 0.3 * (dist > 0.7)) * _soft((u - 0.035) * s, 0.01 * s) * (u < 0.31)
    return out


def _heart(x: np.ndarray, y: np.ndarray, cx: float, s: float) -> np.ndarray:
    """Cardiac silhouette: an ellipse low in the chest, two thirds of it to the image's right (patient's left)."""
    inside = 1 - ((x - (cx + 0.05 * s)) / (0.15 * s)) ** 2 - ((y - 0.64 * s) / (0.11 * s)) ** 2
    return _soft(inside * 0.05 * s, 0.02 * s)


def _lung_markings(shape: tuple[int, int], rng: np.random.Generator, s: float) -> np.ndarray:
    """Vessel-like texture: band-passed noise, lines more than blobs."""
    noise = rng.normal(0, 1, shape)
    fine = ndimage.gaussian_filter(noise, s / 250) - ndimage.gaussian_filter(noise, s / 80)
    return np.clip(fine / (fine.std() + 1e-6), 0, None)


def render_phantom(size: int = 512, seed: int = 0) -> np.ndarray:
    """A frontal chest phantom as float32 (size, size) in [0, 1] (air dark, bone bright), deterministic per seed."""
    if size < 64:
        raise ValueError(f"render_phantom: size must be at least 64 pixels, got {size}")
    s, rng = float(size), np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = 0.5 * s
    body = _torso(x, y, cx, s)
    heart = _heart(x, y, cx, s)
    lungs = np.maximum(_lung(x, y, cx - 0.105 * s, -1, s), _lung(x, y, cx + 0.105 * s, 1, s)) * (1 - 0.75 * heart)
    img = 0.03 + body * (0.50 + 0.12 * np.exp(-((x - cx) / (0.25 * s)) ** 2))  # tissue thickest centrally
    hilum = np.exp(-((np.abs(x - cx) - 0.09 * s) / (0.06 * s)) ** 2 - ((y - 0.45 * s) / (0.12 * s)) ** 2)
    img -= lungs * (0.36 - 0.06 * y / s - 0.08 * hilum - 0.05 * _lung_markings(img.shape, rng, s) * (0.4 + hilum))
    mediastinum = _soft(0.055 * s + 0.02 * s * (y / s) - np.abs(x - cx), 0.015 * s) * (y > 0.05 * s)
    img += 0.14 * np.maximum(mediastinum, heart) * body
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * y / (0.045 * s))  # end plates show through the mediastinum
    img += (0.07 + 0.03 * vertebrae) * _soft(0.035 * s - np.abs(x - cx), 0.006 * s) * body
    img += 0.10 * _ribs(x, y, cx, s) * body + 0.16 * _clavicles(x, y, cx, s) * body
    below = _soft(y - 0.7 * s, 0.08 * s) * (1 - lungs) * (1 - heart)
    img += 0.08 * below * body  # abdomen under the domes
    bubble = 1 - ((x - (cx + 0.13 * s)) / (0.045 * s)) ** 2 - ((y - 0.79 * s) / (0.03 * s)) ** 2
    img -= 0.12 * _soft(bubble * 0.02 * s, 0.004 * s) * body  # gastric air under the left dome
    img = ndimage.gaussian_filter(img, sigma=s / 500)
    img += rng.normal(0, 0.01, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def write_phantom(path: str | Path = PHANTOM_PNG, size: int = 512, seed: int = 0) -> Path:
    """Render and save as an 8-bit grayscale PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(render_phantom(size, seed)), mode="L").save(path, optimize=True)
    log.info("wrote %s", path)
    return path
