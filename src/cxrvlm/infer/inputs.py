"""What `interpret` accepts as images, and finding image files in folders for a batch.

An image is a path (PNG, JPEG, TIFF, DICOM; read with `cxrvlm.io.read_image`), an `XrayImage`, or an array
(float (H, W) in [0, 1], uint8/uint16 (H, W), or RGB(A)). A study is one image or a list of them (its views).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from cxrvlm.io import XrayImage, read_image
from cxrvlm.models.preprocess import to_gray  # the same checks the model applies to arrays

ImageLike = Union[str, os.PathLike, np.ndarray, XrayImage]
# A file of more than WHOLE_PIXELS is read reduced by an integer factor to at most FILM_PIXELS (k x k block means,
# `read_image(film_pixels=..., whole_pixels=...)`): whatever reads the pixels works below 2048 pixels (the model's
# input, the mask refiner's 512-pixel film, the overlay's 1024), common detector sizes stay whole, and a 7000 x 7000
# file is a 1750 x 1750 film, 12 MB of floats (its masks 3 MB each), instead of 196 MB.
WHOLE_PIXELS = 4096 * 4096
FILM_PIXELS = 2048 * 2048
# Extensions a folder is searched for; a file named on the command line is read whatever its name (by content).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".dcm", ".dicom", ".dic")


class InputError(ValueError):
    """An input the interpreter cannot use; the message names it and says why."""


@dataclass
class View:
    """One loaded image: float32 (H, W) pixels in [0, 1], a display name, and its view position when known.
    `source_size` is the file's (height, width) when the pixels were read reduced; coordinates are in its pixels."""

    pixels: np.ndarray
    name: str
    view_position: str | None = None
    source_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the input image: the pixels' own size unless they were read reduced."""
        h, w = self.source_size or self.pixels.shape
        return int(h), int(w)

    @property
    def is_lateral(self) -> bool:
        return self.view_position == "LATERAL"


def _array_pixels(a: np.ndarray, name: str) -> np.ndarray:
    return to_gray(a, name)


def load_view(image: ImageLike, name: str | None = None) -> View:
    """One image -> View. Raises `ImageReadError` / `InputError` (ValueErrors) naming the input and the reason."""
    if isinstance(image, XrayImage):
        return View(_array_pixels(image.pixels, image.meta.path), image.meta.path, image.meta.view_position)
    if isinstance(image, np.ndarray):
        label = name or f"<array {'x'.join(str(s) for s in image.shape)}>"
        return View(_array_pixels(image, label), label)
    if isinstance(image, (str, os.PathLike)):
        x = read_image(image, film_pixels=FILM_PIXELS, whole_pixels=WHOLE_PIXELS)
        return View(x.pixels, str(image), x.meta.view_position, tuple(x.meta.source_size))
    raise InputError(f"{name or 'image'}: expected a path, an array or an XrayImage, got {type(image).__name__}")


def is_interval(days: Any) -> bool:
    """Whether `days` is a prior study's interval: a finite number of days, 0 or more (the prior is the earlier
    study)."""
    try:
        return not isinstance(days, bool) and math.isfinite(float(days)) and float(days) >= 0
    except (TypeError, ValueError):
        return False


def load_study(images: ImageLike | Sequence[ImageLike]) -> list[View]:
    """One image or a list of a study's views -> Views (at least one)."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("no image given (an empty list)")
        return [load_view(im) for im in images]
    return [load_view(images)]


def frontal_and_lateral(views: Sequence[View]) -> tuple[View, View | None]:
    """The view the single-image tasks read (the first not marked lateral) and a lateral one, if any: a view
    marked LATERAL, else the second view of an unmarked pair (the study's views come frontal first)."""
    frontal = next((v for v in views if not v.is_lateral), views[0])
    rest = [v for v in views if v is not frontal]
    lateral = next((v for v in rest if v.is_lateral), rest[0] if rest else None)
    return frontal, lateral


def collect_files(items: Iterable[str | os.PathLike]) -> list[str]:
    """Command-line inputs -> files: a file is kept as given (even a missing one, so its error is reported in
    order), a folder is searched recursively for `IMAGE_EXTENSIONS`, sorted. Duplicates are dropped."""
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            out += [str(p) for p in found]
        else:
            out.append(str(item))
    return list(dict.fromkeys(out))

