"""Generated lung-like masks for the mask tokenizer tests (import from a test in this folder)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def lung_outline(cx: float, top: float, bottom: float, width: float, lateral: int, notch: float = 0.0):
    """Polygon of one lung: apex at (cx, top), a convex lateral border reaching `width` pixels towards `lateral`
    (-1 image-left, +1 image-right) at the base, a sloping base, a straight medial border with an optional
    cardiac notch (a fraction of the width)."""
    u = np.linspace(0, 1, 40)
    lat = [(cx + lateral * width * np.sin(np.pi / 2 * t) ** 0.6, top + (bottom - top) * t) for t in u]
    base = [(cx - lateral * 0.15 * width, bottom - 0.08 * (bottom - top))]
    med = [(cx - lateral * (0.15 - notch * np.sin(np.pi * t)) * width, bottom - 0.08 * (bottom - top) - t * 0.92
            * (bottom - top)) for t in np.linspace(0, 1, 20)]
    return lat + base + med


def lungs_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A both-lungs bool H x W mask with random proportions (patient's right lung on the image's left)."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    top, bottom = h * rng.uniform(0.08, 0.2), h * rng.uniform(0.75, 0.92)
    lw = w * rng.uniform(0.25, 0.32)
    d.polygon(lung_outline(w * 0.41, top, bottom, lw, -1), fill=255)
    d.polygon(lung_outline(w * 0.59, top + h * 0.02, bottom - h * 0.04, lw * 0.95, +1, notch=0.3), fill=255)
    return np.asarray(im) > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def film_and_lung(h: int = 300, w: int = 260) -> tuple[np.ndarray, np.ndarray]:
    """A two-tone film (float32 H x W) and the bool mask of the one elliptic lung drawn on it."""
    yy, xx = np.mgrid[:h, :w]
    lung = ((yy - 150) / 100.0) ** 2 + ((xx - 90) / 50.0) ** 2 < 1.0
    film = np.where(lung, 0.2, 0.8).astype(np.float32)
    return film, lung
