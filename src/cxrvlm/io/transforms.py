"""Small pixel helpers shared by the layers above: resizing float images and converting to 8-bit."""
from __future__ import annotations

import numpy as np
from PIL import Image

# "area" averages every source pixel under a target pixel (Pillow BOX): the right filter for shrinking an X-ray,
# where bilinear sampling would skip pixels and alias fine structure (ribs, lines, nodules).
_FILTERS = {
    "area": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


def _check_2d(pixels: np.ndarray, what: str) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or 0 in pixels.shape:
        raise ValueError(f"{what}: expected a non-empty 2-D (H, W) array, got shape {pixels.shape}")
    return pixels


def resize_to(pixels: np.ndarray, size: tuple[int, int], method: str = "area") -> np.ndarray:
    """Resize a float (H, W) image to `size` = (height, width) -> float32 (height, width); aspect is not kept.

    Runs in Pillow's 32-bit float mode, so no precision is lost to 8-bit. `method`: "area" (default), "bilinear",
    "bicubic" or "nearest". Bicubic may overshoot [0, 1] slightly; the result is clipped to the input's range.
    """
    pixels = _check_2d(pixels, "resize_to")
    if method not in _FILTERS:
        raise ValueError(f"resize_to: unknown method {method!r}; choose one of {sorted(_FILTERS)}")
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"resize_to: target size must be positive (height, width), got {size}")
    src = np.ascontiguousarray(pixels, dtype=np.float32)
    if src.shape == (height, width):
        return src.copy()
    out = np.asarray(Image.fromarray(src).resize((width, height), _FILTERS[method]), dtype=np.float32)
    return np.clip(out, src.min(), src.max())


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """float (H, W) in [0, 1] -> uint8 (H, W) in 0..255, rounded; values outside [0, 1] are clipped."""
    pixels = _check_2d(pixels, "to_uint8")
    return np.rint(np.clip(pixels.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
