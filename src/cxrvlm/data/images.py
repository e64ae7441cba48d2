"""The images examples need, read once and kept at the model's input size, and the augmentations training draws
(intensity, a small affine, zoom-and-shift with the loc tokens rewritten to match); eval's --perturb uses zoom_shift."""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from cxrvlm.examples import Example
from cxrvlm.io import read_image
from cxrvlm.io.transforms import resize_to
from cxrvlm.tokens.loc import locs_extent, zoom_shift_coord, zoom_shift_locs


class ImageCache:
    """Images read with `cxrvlm.io.read_image`, resized to `size` x `size` and kept as uint8 (64 KB at 256 px)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._cache: dict[str, np.ndarray] = {}

    def get(self, path: str) -> np.ndarray:
        """float32 size x size in [0, 1]."""
        if path not in self._cache:
            pixels = read_image(path).pixels
            small = resize_to(pixels, (self.size, self.size))
            self._cache[path] = np.clip(np.round(small * 255), 0, 255).astype(np.uint8)
        return self._cache[path].astype(np.float32) / 255.0

    def views(self, example: Example) -> list[np.ndarray]:
        return [self.get(p) for p in example.images]


def augment_intensity(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and gamma jitter: changes exposure, never geometry (boxes and masks stay valid)."""
    gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
    contrast = float(rng.uniform(0.8, 1.2))
    brightness = float(rng.uniform(-0.08, 0.08))
    out = np.power(np.clip(pixels, 0.0, 1.0), gamma)
    out = (out - 0.5) * contrast + 0.5 + brightness
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def augment_geometry(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small random affine (rotation ±7°, zoom 0.9-1.1, shift ±5%), never a flip: left and right stay where they
    are. Only for tasks whose answer holds no coordinates (`Task.coordinates` False)."""
    h, w = pixels.shape
    angle = np.deg2rad(rng.uniform(-7, 7))
    zoom = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.05, 0.05, size=2) * (h, w)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
    centre = np.array([h / 2, w / 2])
    offset = centre - rot @ (centre + shift)  # output pixel o samples input rot @ o + offset
    return ndimage.affine_transform(pixels, rot, offset=offset, order=1, mode="nearest").astype(np.float32)


def draw_zoom_shift(extent: tuple[float, float, float, float] | None, rng: np.random.Generator,
                    max_zoom: float = 0.1, max_shift: float = 0.05) -> tuple[float, float, float]:
    """(zoom, dx, dy) for `zoom_shift`: zoom 1 ± max_zoom and shifts within ± max_shift, narrowed so the boxes'
    `extent` (normalised x1, y1, x2, y2) stays inside the image: no box is cut, so every mask keeps its shape."""
    zoom = float(rng.uniform(1 - max_zoom, 1 + max_zoom))
    if extent is not None:
        lo = [zoom_shift_coord(v, zoom) for v in extent[:2]]
        hi = [zoom_shift_coord(v, zoom) for v in extent[2:]]
        if min(lo) < 0 or max(hi) > 1:  # zoomed past the edge: keep the scale
            zoom, lo, hi = 1.0, list(extent[:2]), list(extent[2:])
    else:
        lo, hi = [0.5, 0.5], [0.5, 0.5]
    shifts = [float(rng.uniform(max(-max_shift, -a), min(max_shift, 1 - b))) for a, b in zip(lo, hi)]
    return zoom, shifts[0], shifts[1]


def zoom_shift(pixels: np.ndarray, zoom: float, dx: float, dy: float) -> np.ndarray:
    """The image zoomed by `zoom` about its centre, then shifted by (dx, dy) of its width and height: the pixel
    transform that `tokens.loc.zoom_shift_locs` applies to loc tokens (edges extended)."""
    h, w = pixels.shape
    # output pixel o samples input (o - centre - shift) / zoom + centre, per axis (pixel centres at i + 0.5)
    offset = [(h / 2 - 0.5) - ((h / 2 - 0.5) + dy * h) / zoom, (w / 2 - 0.5) - ((w / 2 - 0.5) + dx * w) / zoom]
    return ndimage.affine_transform(pixels, np.array([1 / zoom, 1 / zoom]), offset=offset, order=1,
                                    mode="nearest").astype(np.float32)


def zoomed_and_shifted(example: Example, pixels: np.ndarray,
                       rng: np.random.Generator) -> tuple[Example, list[np.ndarray]]:
    """A single-image example of a `Task.zoom_shift_safe` task, zoomed and shifted, with its loc tokens rewritten to match
    (for training: `target` still holds the original geometry)."""
    zoom, dx, dy = draw_zoom_shift(locs_extent(example.prefix + example.suffix), rng)
    moved = dataclasses.replace(example, prefix=zoom_shift_locs(example.prefix, zoom, dx, dy),
                                suffix=zoom_shift_locs(example.suffix, zoom, dx, dy))
    return moved, [zoom_shift(pixels, zoom, dx, dy)]
