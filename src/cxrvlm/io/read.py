"""`read_image`: any supported X-ray file -> float32 (H, W) pixels in [0, 1] + metadata, or a clear error."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from cxrvlm.io.detect import HEAD_BYTES, detect_format, has_dicom_extension
from cxrvlm.io.dicom import read_dicom
from cxrvlm.io.image import ImageMeta, ImageReadError, XrayImage
from cxrvlm.io.raster import read_raster
from cxrvlm.io.transforms import block_mean, reduction_factor

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000  # ~7000 x 7000: above any chest X-ray detector, and 200 MB as float32
_EXTENSIONS = {"png": (".png",), "jpeg": (".jpg", ".jpeg", ".jpe"), "tiff": (".tif", ".tiff")}


def _describe(head: bytes) -> str:
    """A short hint of what a non-image file is, for the error message."""
    sample = head[:64]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return f"it looks like text: {sample[:24].decode('ascii')!r}"
    return f"it starts with {head[:12]!r}"


def _sniff(path: Path) -> tuple[str, bytes]:
    """Check the file exists, is not empty and is a supported format by content; return (format, first bytes)."""
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file (a directory?)")
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        raise ImageReadError(path, f"cannot open the file: {e.strerror or e}") from e
    if not head:
        raise ImageReadError(path, "file is empty (0 bytes)")
    fmt = detect_format(head)
    if fmt is None and has_dicom_extension(path.name):
        fmt = "dicom"  # a DICOM named so but starting with an unusual element: let pydicom judge it
    if fmt is None:
        raise ImageReadError(path, f"not an image: the content is not PNG, JPEG, TIFF or DICOM ({_describe(head)})")
    suffix = path.suffix.lower()
    if suffix in sum(_EXTENSIONS.values(), ()) and suffix not in _EXTENSIONS.get(fmt, ()):
        log.debug("%s: named %s but the content is %s; reading it as %s", path, suffix, fmt, fmt)
    return fmt, head


def _check_count(name: str, value: int | None, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _reduce(image: XrayImage, film_pixels: int | None, whole_pixels: int | None) -> XrayImage:
    """A decoded image with more than `film_pixels` pixels (and more than `whole_pixels`) -> its k x k block means
    (DICOM: decoded whole first)."""
    k = reduction_factor(*image.pixels.shape, film_pixels, whole_pixels)
    return image if k == 1 else XrayImage(pixels=block_mean(image.pixels, k), meta=image.meta)


def _read(path: str | os.PathLike, max_pixels: int, decode: bool,
          film_pixels: int | None = None, whole_pixels: int | None = None) -> XrayImage | ImageMeta:
    _check_count("max_pixels", max_pixels)
    _check_count("film_pixels", film_pixels, optional=True)
    _check_count("whole_pixels", whole_pixels, optional=True)
    path = Path(path)
    fmt, head = _sniff(path)
    if fmt == "dicom":
        image = read_dicom(path, head, max_pixels, decode=decode)
        return _reduce(image, film_pixels, whole_pixels) if isinstance(image, XrayImage) else image
    return read_raster(path, fmt, head, max_pixels, decode=decode, film_pixels=film_pixels, whole_pixels=whole_pixels)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               film_pixels: int | None = None, whole_pixels: int | None = None) -> XrayImage:
    """Read a chest X-ray (PNG, JPEG, 8/16-bit PNG or TIFF, DICOM) as displayed by a viewer.

    Returns an `XrayImage`: `.pixels` float32 (H, W) in [0, 1] with air dark (MONOCHROME1 inverted, DICOM
    rescale and window applied, colour converted to gray, EXIF orientation applied) and `.meta` (`ImageMeta`).
    The format is found from the file's content, not its name. Images declaring more than `max_pixels` pixels
    are refused before decoding.

    `film_pixels`: an image of more pixels is reduced by the smallest integer factor k that brings it within the
    limit (each k x k block averaged), while it is decoded where the format allows (a big PNG is then never whole
    in memory); `.meta.source_size` keeps the file's size, so coordinates can still be given in its pixels.
    `whole_pixels`: an image of at most that many pixels is read whole all the same (a bigger one is still reduced
    to within `film_pixels`).

    Raises `ImageReadError` (a ValueError) naming the file and the reason: missing, empty, truncated or corrupt,
    not an image, too many pixels, unsupported mode or DICOM.
    """
    image = _read(path, max_pixels, decode=True, film_pixels=film_pixels, whole_pixels=whole_pixels)
    assert isinstance(image, XrayImage)
    return image


def probe_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageMeta:
    """The metadata `read_image` would return, from the header only (pixels are not decoded).

    It runs the same checks up to decoding, so a file that probes fine can still be truncated in its pixel data;
    `meta.scaling` is None because it depends on the pixels.
    """
    meta = _read(path, max_pixels, decode=False)
    assert isinstance(meta, ImageMeta)
    return meta
