"""PNG, JPEG and TIFF through Pillow.

Scaling to [0, 1] (recorded in `ImageMeta.scaling`):
- 1-bit: 0 / 1. 8-bit gray, palette and colour (after ITU-R 601-2 luma): value / 255 ("bit_depth"). 8-bit files
  are display-ready (already windowed by whoever exported them), so their brightness is kept as stored.
- More than 8 bits (16-bit PNG/TIFF, 32-bit integer or float TIFF): min-max over the image ("min_max"). A 16-bit
  raster carries no display window, unlike DICOM, and chest X-rays exported this way typically use 10-14 of the
  16 bits or an offset band (PadChest, detector exports); dividing by 65535 would give near-black images whose
  brightness depends on the exporter. Min-max makes them comparable, and matches what DICOM reading does when the
  file has no VOI window. A constant image falls back to value / (2**bit_depth - 1).
EXIF orientation (JPEG, PNG eXIf) is applied, so pixels are as a viewer displays them; Pillow applies a TIFF's
Orientation tag itself when it loads the file.
Colour images are converted to gray; alpha is dropped (X-rays have no meaningful transparency).
"""
from __future__ import annotations

import logging
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError, features

from cxrvlm.io import png_bands
from cxrvlm.io.image import ImageMeta, ImageReadError, XrayImage, check_pixel_count, luma
from cxrvlm.io.transforms import BlockMean, reduction_factor

log = logging.getLogger(__name__)

# Pillow's JPEG opener also opens MPO files (as MpoImageFile): "MPO" is no opener of its own, and naming it in
# `Image.open(formats=...)` raised KeyError('MPO') on any file the JPEG opener refused.
_PIL_FORMATS = {"png": ("PNG",), "jpeg": ("JPEG",), "tiff": ("TIFF",)}
_GRAY_8 = ("L", "LA", "La")
_COLOUR_8 = ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "P", "PA")
_BAND_PIXELS = 1 << 18  # pixels converted at a time (float64 colour: 6 MB)
_HIGH_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# Decoder failures on a damaged file (Pillow raises these, and zlib.error from PNG's inflate).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

# EXIF Orientation (tag 0x0112) -> the array operation that shows the image upright, as PIL.ImageOps.exif_transpose.
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1, :],  # mirrored top-bottom
    5: lambda a: a.T,  # transposed
    6: lambda a: np.rot90(a, -1),  # stored rotated 90 counter-clockwise: turn clockwise
    7: lambda a: np.rot90(a, 2).T,  # transversed
    8: lambda a: np.rot90(a, 1),  # stored rotated 90 clockwise: turn counter-clockwise
}


@contextmanager
def _tiff_through_libtiff(fmt: str) -> Iterator[None]:
    """Let libtiff decode TIFFs: Pillow's own strip reader misplaces rows of an uncompressed TIFF whose
    Orientation tag transposes it (5-8; seen in Pillow 13.0), libtiff reads every orientation right."""
    old = TiffImagePlugin.READ_LIBTIFF
    if fmt == "tiff" and features.check_codec("libtiff"):
        TiffImagePlugin.READ_LIBTIFF = True
    try:
        yield
    finally:
        TiffImagePlugin.READ_LIBTIFF = old


@contextmanager
def _pillow(path: Path, fmt: str) -> Iterator[Image.Image]:
    """Open `path` as `fmt` only, turning Pillow's bomb warnings and decoder errors into ImageReadError."""
    name = fmt.upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _tiff_through_libtiff(fmt):
                im = Image.open(path, formats=_PIL_FORMATS[fmt])
            with im:
                yield im
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(path, f"decompression bomb refused by Pillow: {e}") from e
    except UnidentifiedImageError as e:
        raise ImageReadError(path, f"corrupt {name} file: the header cannot be parsed") from e
    except MemoryError as e:
        raise ImageReadError(path, f"not enough memory to decode this {name} file") from e
    except _DECODE_ERRORS as e:
        raise ImageReadError(path, f"truncated or corrupt {name} file: {e}") from e


def _stored_bit_depth(im: Image.Image, fmt: str, head: bytes) -> int:
    """Bits per sample as the file stores them (not as Pillow expands them)."""
    if fmt == "png" and len(head) > 24 and im.mode != "P":
        return int(head[24])  # IHDR bit depth; palette indices are not sample depth
    if fmt == "tiff":
        bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None  # BitsPerSample, one value per sample
        if bits:
            return int(max(bits) if isinstance(bits, tuple) else bits)
    if fmt == "jpeg":
        return int(getattr(im, "bits", 8))
    return {"1": 1, "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 32, "F": 32}.get(im.mode, 8)


def _check_single_frame(path: Path, fmt: str, im: Image.Image) -> None:
    # An MPO JPEG's first frame is its primary image by definition; a multi-page TIFF or animated PNG is ambiguous.
    frames = int(getattr(im, "n_frames", 1))
    if frames > 1 and fmt != "jpeg":
        raise ImageReadError(path, f"{fmt.upper()} has {frames} frames/pages; only single-image files are supported")


def _orientation(path: Path, im: Image.Image, fmt: str) -> int:
    """EXIF orientation this module must apply (1 = none). TIFF: 1, because Pillow applies it on load."""
    if fmt == "tiff":
        return 1
    if fmt == "png" and "exif" not in im.info:
        # Pillow decodes the whole image to look for an eXIf chunk after the image data; the chunks are walked
        # here instead, and Pillow is given what it would have found
        found = png_bands.find_chunk(path, b"eXIf")
        if found is None:
            return 1
        im.info["exif"] = b"Exif\x00\x00" + found
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception as e:  # noqa: BLE001 - a broken EXIF block must not make the image unreadable
        log.debug("ignoring unreadable EXIF in %s: %s", getattr(im, "filename", "?"), e)
        return 1
    return value if value in _ORIENT else 1


def _decodable(path: Path, im: Image.Image) -> Image.Image:
    """The image (or band) in a mode whose array is (H, W) gray or (H, W, C) colour, loaded."""
    mode = im.mode
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if mode == "PA" else "RGB")
    elif mode in ("CMYK", "YCbCr"):
        im = im.convert("RGB")
    elif mode in ("La", "RGBa"):  # premultiplied alpha: undo it before dropping alpha
        im = im.convert(mode[:-1] + "A")
    elif mode not in _GRAY_8 + _COLOUR_8 + _HIGH_BIT + ("1",):
        raise ImageReadError(path, f"unsupported Pillow image mode {mode!r}")
    im.load()
    return im


def _levels(values: np.ndarray) -> np.ndarray:
    """Rows as stored -> float64 gray levels: colour through luma, gray + alpha its gray, gray as it is."""
    if values.ndim == 3:
        return values[..., 0].astype(np.float64) if values.shape[-1] <= 2 else luma(values)
    return values.astype(np.float64)


def _level_range(path: Path, im: Image.Image, bit_depth: int) -> tuple[float, float, str]:
    """(level mapped to 0, level mapped to 1, scaling name) for the whole image (see the module docstring)."""
    if im.mode == "1":
        return 0.0, 1.0, "bit_depth"
    if im.mode not in _HIGH_BIT:
        return 0.0, 255.0, "bit_depth"
    lo, hi = (float(v) for v in _decodable(path, im).getextrema())
    return (lo, hi, "min_max") if hi > lo else (0.0, _full_scale(im.mode, bit_depth), "min_max")


def _full_scale(mode: str, bit_depth: int) -> float:
    """What a constant high-bit image is divided by: the format's full range (a float image: 1)."""
    return float(2 ** min(bit_depth, 32) - 1) if mode != "F" else 1.0


def _unit(levels: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((levels - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _rows(im: Image.Image, band_rows: int) -> Iterator[np.ndarray]:
    """A loaded image's rows as arrays, `band_rows` at a time (no whole-image array is made)."""
    for top in range(0, im.height, band_rows):
        yield np.asarray(im.crop((0, top, im.width, min(im.height, top + band_rows))))


def _band_rows(width: int) -> int:
    return max(1, _BAND_PIXELS // max(1, width))


def _full_size(path: Path, im: Image.Image, bit_depth: int) -> tuple[np.ndarray, str]:
    """The whole image -> float32 (H, W) in [0, 1], converted a band of rows at a time (float64 only per band)."""
    lo, hi, scaling = _level_range(path, im, bit_depth)
    source = _decodable(path, im)
    out = np.empty((im.height, im.width), np.float32)
    rows = _band_rows(im.width)
    for i, values in enumerate(_rows(source, rows)):
        out[i * rows:i * rows + len(values)] = _unit(_levels(values), lo, hi)
    return out, scaling


def _png_header(path: Path, fmt: str) -> png_bands.Header | None:
    return png_bands.read_header(path) if fmt == "png" else None


def _reduced(path: Path, im: Image.Image, fmt: str, bit_depth: int, k: int) -> tuple[np.ndarray, str]:
    """The image reduced k times (the mean of each k x k block) -> float32 in [0, 1]. A PNG is decoded band by
    band (`png_bands`), anything else by Pillow at once and converted a band at a time."""
    header = _png_header(path, fmt)
    if header is not None:
        bands: Iterator[np.ndarray] = (np.asarray(_decodable(path, b)) for b in png_bands.bands(path, header))
    else:
        bands = _rows(_decodable(path, im), _band_rows(im.width))
    mean = BlockMean(im.height, im.width, k)
    lo, hi = np.inf, -np.inf
    for values in bands:
        levels = _levels(values)
        lo, hi = min(lo, float(levels.min())), max(hi, float(levels.max()))
        mean.add(levels)
    reduced = mean.result()
    if im.mode not in _HIGH_BIT:
        lo, hi = _level_range(path, im, bit_depth)[:2]
    elif hi <= lo:
        lo, hi = 0.0, _full_scale(im.mode, bit_depth)
    return _unit(reduced, lo, hi), ("min_max" if im.mode in _HIGH_BIT else "bit_depth")


def read_raster(path: Path, fmt: str, head: bytes, max_pixels: int, decode: bool = True,
                film_pixels: int | None = None, whole_pixels: int | None = None) -> XrayImage | ImageMeta:
    """Read a PNG/JPEG/TIFF file into an XrayImage; with `decode=False` only its header, as ImageMeta. With
    `film_pixels`, an image of more pixels (and more than `whole_pixels`) is reduced by an integer factor while it
    is decoded (see `read_image`)."""
    with _pillow(path, fmt) as im:
        check_pixel_count(path, im.height, im.width, max_pixels)
        _check_single_frame(path, fmt, im)
        orientation = _orientation(path, im, fmt)
        bit_depth = _stored_bit_depth(im, fmt, head)
        size = (im.height, im.width) if orientation < 5 else (im.width, im.height)  # 5..8 swap the axes
        meta = ImageMeta(path=str(path), format=fmt, source_size=size, bit_depth=bit_depth, photometric=im.mode)
        if not decode:
            return meta
        k = reduction_factor(im.height, im.width, film_pixels, whole_pixels)
        if k > 1:
            pixels, meta.scaling = _reduced(path, im, fmt, bit_depth, k)
        else:
            pixels, meta.scaling = _full_size(path, im, bit_depth)
    if orientation != 1:
        pixels = np.ascontiguousarray(_ORIENT[orientation](pixels))
    return XrayImage(pixels=pixels, meta=meta)
