"""The types image reading returns: `XrayImage` (pixels + `ImageMeta`) and `ImageReadError`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_FORMATS = ("png", "jpeg", "tiff", "dicom")

# How stored values became [0, 1] (ImageMeta.scaling).
SCALINGS = (
    "bit_depth",  # divided by the format's full range: 8-bit / 255, 1-bit / 1, colour after luma / 255
    "min_max",  # (v - min) / (max - min) over the image: >8-bit rasters, DICOM without a VOI window
    "window",  # DICOM Window Center / Width (VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID)
    "voi_lut",  # DICOM VOI LUT Sequence table
)


class ImageReadError(ValueError):
    """An image file could not be read. The message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class ImageMeta:
    """What reading an image learnt about it.

    source_size: (height, width) in pixels as displayed (after EXIF orientation), before any resizing.
    bit_depth: bits per sample as stored (DICOM Bits Stored; PNG/TIFF bit depth; 8 for JPEG).
    photometric: DICOM Photometric Interpretation (e.g. "MONOCHROME1") or, for PNG/JPEG/TIFF, the Pillow mode
        the file decoded to (e.g. "L", "I;16", "RGB", "P").
    scaling: how stored values were mapped to [0, 1], one of `SCALINGS`; None until the pixels are decoded.
    pixel_spacing: DICOM (row, column) spacing in mm (Pixel Spacing, else Imager Pixel Spacing), where present.
    """

    path: str
    format: str
    source_size: tuple[int, int]
    bit_depth: int
    photometric: str
    view_position: str | None = None
    scaling: str | None = None
    patient_id: str | None = None
    study_uid: str | None = None
    modality: str | None = None
    pixel_spacing: tuple[float, float] | None = None


@dataclass
class XrayImage:
    """A decoded image: `pixels` float32 (H, W) in [0, 1], 0 = black (air on a chest X-ray), and its metadata.
    `pixels` has the file's size (`meta.source_size`) unless it was read reduced (`read_image(film_pixels=...)`)."""

    pixels: np.ndarray
    meta: ImageMeta

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def check_pixel_count(path: str | Path, height: int, width: int, max_pixels: int) -> None:
    """Refuse an image whose declared size exceeds `max_pixels`, before anything is decoded."""
    if height <= 0 or width <= 0:
        raise ImageReadError(path, f"image declares an empty size {height} x {width} (height x width)")
    count = int(height) * int(width)
    if count > max_pixels:
        raise ImageReadError(
            path,
            f"image declares {height} x {width} = {count:,} pixels, more than the limit of {max_pixels:,} "
            "(possible decompression bomb; raise max_pixels if the file is trusted)",
        )


def min_max(values: np.ndarray, fallback_scale: float | None = None) -> np.ndarray:
    """Stretch `values` to [0, 1] float32 over their own range.

    A constant image has no range: it is divided by `fallback_scale` (the format's full range) when given, else
    returned as zeros, so a blank image stays blank instead of dividing by zero.
    """
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        out = (values - lo) / (hi - lo)
    elif fallback_scale:
        out = values / fallback_scale
    else:
        out = np.zeros_like(values)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3+) colour -> (H, W) float64 gray with ITU-R 601-2 weights (as Pillow's "L"), without rounding."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
