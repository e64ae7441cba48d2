"""Small pixel helpers shared by the layers above: resizing float images, block means, converting to 8-bit."""
from __future__ import annotations

import math

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
    scaled = np.clip(pixels, 0.0, 1.0, dtype=np.float32)  # the one float copy, worked in place
    scaled *= np.float32(255.0)
    return np.rint(scaled, out=scaled).astype(np.uint8)


def reduction_factor(height: int, width: int, max_pixels: int | None, whole_pixels: int | None = None) -> int:
    """The smallest integer k for which a (height, width) image reduced k times (ceil(height / k) x
    ceil(width / k)) has at most `max_pixels` pixels; 1 when it fits already, has at most `whole_pixels` pixels
    (kept whole although more than `max_pixels`), or `max_pixels` is None."""
    if max_pixels is None or height * width <= max(max_pixels, whole_pixels or 0):
        return 1
    k = max(2, math.isqrt(height * width // max_pixels))
    while -(-height // k) * -(-width // k) > max_pixels:
        k += 1
    return k


class BlockMean:
    """A float (H, W) image given as bands of rows -> the float32 mean of each k x k block, (ceil(H/k), ceil(W/k));
    the blocks at the right and bottom edges average the pixels they have. Memory: the output and one band."""

    def __init__(self, height: int, width: int, k: int) -> None:
        self.k, self.width = int(k), int(width)
        self.out = np.empty((-(-height // k), -(-width // k)), np.float32)
        self._cols = np.arange(0, width, k)
        self._col_counts = np.diff(np.append(self._cols, width)).astype(np.float64)
        self._row, self._carry = 0, np.empty((0, width))

    def add(self, band: np.ndarray) -> None:
        """The next rows, (n, W), any n."""
        rows = np.concatenate([self._carry, band]) if len(self._carry) else band
        whole = len(rows) // self.k * self.k
        self._emit(rows[:whole])
        self._carry = np.array(rows[whole:], np.float64)

    def result(self) -> np.ndarray:
        self._emit(self._carry)
        self._carry = np.empty((0, self.width))
        return self.out

    def _emit(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        starts = np.arange(0, len(rows), self.k)
        sums = np.add.reduceat(np.add.reduceat(np.asarray(rows, np.float64), self._cols, axis=1), starts, axis=0)
        counts = np.diff(np.append(starts, len(rows)))[:, None] * self._col_counts[None, :]
        self.out[self._row:self._row + len(starts)] = sums / counts
        self._row += len(starts)


def block_mean(array: np.ndarray, k: int) -> np.ndarray:
    """float/bool (H, W) -> float32 (ceil(H/k), ceil(W/k)), the mean of each k x k block, a few rows at a time
    (no float64 copy of the whole array)."""
    array = _check_2d(array, "block_mean")
    h, w = array.shape
    mean = BlockMean(h, w, k)
    step = max(k, (1 << 20) // w // k * k)
    for top in range(0, h, step):
        mean.add(array[top:top + step])
    return mean.result()
