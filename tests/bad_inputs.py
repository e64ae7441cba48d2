"""A bad-input corpus, generated (no patient data): every kind of file a hostile user or a messy clinic folder hands
the reader, with what reading it must give.

    from bad_inputs import CORPUS, write_corpus
    items = write_corpus(tmp_path)        # {name: path}, one file per `CORPUS` item
    CORPUS["zero.png"].error              # a phrase the error must contain, or None: it must be read

It lives with the tests (it is built from their image writers, `fixtures_images`); the sweep over it is
`tests/infer/test_bad_input_corpus.py`. DICOM header corruptions (`corrupt_dicom`) are also used on their own.
"""
from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from fixtures_images import (
    gradient,
    truncate,
    write_bomb_png,
    write_dicom,
    write_jpeg,
    write_palette_png,
    write_png,
    write_tiff,
)
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless


@dataclass(frozen=True)
class Item:
    write: Callable[[Path], object]  # writes the file at the path it is given
    error: str | None  # a phrase the error message must contain; None: a readable image


def _noise(h: int = 64, w: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8)  # incompressible: a long IDAT


def _rgb(h: int = 64, w: int = 48) -> np.ndarray:
    g = gradient(h, w)
    return np.stack([g, g // 2, 255 - g], axis=-1)


def _bytes(data: bytes) -> Callable[[Path], object]:
    return lambda p: p.write_bytes(data)


def _cut(writer: Callable[[Path], object], keep: float) -> Callable[[Path], object]:
    def write(p: Path) -> None:
        writer(p)
        truncate(p, keep)
    return write


def _as(fmt: str, arr: np.ndarray) -> Callable[[Path], object]:
    """A file of `fmt` content whatever the path's extension says."""
    return lambda p: Image.fromarray(arr).save(p, format=fmt)


def _dicom16(p: Path, **kw: object) -> None:
    write_dicom(p, gradient(64, 48, maxval=4000, dtype=np.uint16), bits_stored=12, **kw)


def _cmyk_jpeg(p: Path) -> None:
    Image.fromarray(_rgb()).convert("CMYK").save(p, format="JPEG")


def _zip(p: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("chest.png", b"not really")
    p.write_bytes(buf.getvalue())


def _jpeg_baseline_dicom(p: Path) -> None:
    """A real JPEG Baseline DICOM: Pillow's JPEG of the image, encapsulated."""
    arr = gradient(64, 48)
    write_dicom(p, arr)
    ds = pydicom.dcmread(p)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(p, enforce_file_format=True)


def _rle_dicom(p: Path) -> None:
    """An RLE Lossless DICOM (pydicom's own encoder)."""
    _dicom16(p)
    ds = pydicom.dcmread(p)
    ds.compress(RLELossless)
    ds.save_as(p, enforce_file_format=True)


def corrupt_dicom(path: Path, how: str) -> Path:
    """Damage a DICOM from `write_dicom` in place: "bad_vr" (Rows' VR made 'ZZ'), "odd_length" (Rows given 3 bytes),
    "huge_length" (Patient ID claims 65,521 bytes), "cut_in_element" (file ends inside the Pixel Data header)."""
    data = bytearray(path.read_bytes())
    rows = data.find(b"\x28\x00\x10\x00US")
    patient = data.find(b"\x10\x00\x20\x00LO")
    pixels = data.find(b"\xe0\x7f\x10\x00")
    if how == "bad_vr":
        data[rows + 4:rows + 6] = b"ZZ"
    elif how == "odd_length":
        data[rows + 6:rows + 8] = struct.pack("<H", 3)
    elif how == "huge_length":
        data[patient + 6:patient + 8] = struct.pack("<H", 0xFFF1)
    elif how == "cut_in_element":
        del data[pixels + 6:]
    else:
        raise ValueError(f"unknown corruption {how!r}")
    path.write_bytes(bytes(data))
    return path


def _corrupt(how: str) -> Callable[[Path], object]:
    def write(p: Path) -> None:
        _dicom16(p)
        corrupt_dicom(p, how)
    return write


CORPUS: dict[str, Item] = {
    # zero-byte, truncated and garbage files of each format
    "zero.png": Item(_bytes(b""), "empty (0 bytes)"),
    "zero.jpg": Item(_bytes(b""), "empty (0 bytes)"),
    "zero.tif": Item(_bytes(b""), "empty (0 bytes)"),
    "zero.dcm": Item(_bytes(b""), "empty (0 bytes)"),
    "truncated.png": Item(_cut(lambda p: write_png(p, _noise()), 0.5), "truncated or corrupt PNG"),
    "truncated.jpg": Item(_cut(lambda p: write_jpeg(p, _noise()), 0.5), "truncated or corrupt JPEG"),
    "truncated.tif": Item(_cut(lambda p: write_tiff(p, _noise()), 0.5), "TIFF"),
    "truncated.dcm": Item(_cut(_dicom16, 0.6), "cannot decode DICOM pixel data"),
    "header_only.jpg": Item(_bytes(b"\xff\xd8\xff\xe0\x00"), "corrupt JPEG"),  # issue 17 row 3
    "header_only.png": Item(_bytes(b"\x89PNG\r\n\x1a\n"), "PNG"),
    "header_only.tif": Item(_bytes(b"II*\x00"), "TIFF"),
    "garbage.png": Item(_bytes(bytes(range(7, 250)) * 4), "not an image"),
    "garbage.dcm": Item(_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 2), "DICOM"),
    # wrong extensions: read by content
    "jpeg_named.png": Item(_as("JPEG", gradient(64, 48)), None),
    "png_named.tif": Item(_as("PNG", gradient(64, 48)), None),
    "png_named.dcm": Item(_as("PNG", gradient(64, 48)), None),
    # decompression bombs, huge and tiny sizes
    "bomb.png": Item(lambda p: write_bomb_png(p, 50_000, 50_000), "decompression bomb"),
    "bomb_under_pillow_limit.png": Item(lambda p: write_bomb_png(p, 8_000, 8_000), "more than the limit"),
    "one_by_one.png": Item(lambda p: write_png(p, np.full((1, 1), 128, np.uint8)), None),
    "one_by_n.png": Item(lambda p: write_png(p, gradient(1, 300)), None),
    "n_by_one.png": Item(lambda p: write_png(p, gradient(300, 1)), None),
    # bit depths, colour models
    "sixteen_bit.png": Item(lambda p: write_png(p, gradient(64, 48, maxval=60000, dtype=np.uint16)), None),
    "rgb.png": Item(lambda p: write_png(p, _rgb()), None),
    "rgba.png": Item(lambda p: write_png(p, np.dstack([_rgb(), np.full((64, 48), 200, np.uint8)])), None),
    "palette.png": Item(lambda p: write_palette_png(p, _rgb()), None),
    "cmyk.jpg": Item(_cmyk_jpeg, None),
    # DICOM: 16-bit, MONOCHROME1, multi-frame, compressed, no pixels, corrupt headers (issue 17 row 4)
    "sixteen_bit.dcm": Item(_dicom16, None),
    "monochrome1.dcm": Item(lambda p: _dicom16(p, photometric="MONOCHROME1"), None),
    "multiframe.dcm": Item(lambda p: write_dicom(p, np.stack([gradient(32, 32)] * 3)), "multi-frame"),
    "jpeg_baseline.dcm": Item(_jpeg_baseline_dicom, None),
    "rle.dcm": Item(_rle_dicom, None),
    "declared_jpeg2000.dcm": Item(lambda p: write_dicom(p, gradient(32, 32), transfer_syntax=JPEG2000Lossless),
                                  "cannot decode DICOM pixel data"),
    "no_pixels.dcm": Item(lambda p: write_dicom(p, None), "no Pixel Data"),
    "bad_vr.dcm": Item(_corrupt("bad_vr"), "Unknown Value Representation 'ZZ'"),
    "odd_length.dcm": Item(_corrupt("odd_length"), "truncated or corrupt DICOM"),
    "huge_length.dcm": Item(_corrupt("huge_length"), "truncated or corrupt DICOM"),
    "cut_in_element.dcm": Item(_corrupt("cut_in_element"), "truncated or corrupt DICOM"),
    # not images at all, named as images
    "notes.png": Item(_bytes(b"patient_id,label\n1,TB\n"), "looks like text"),
    "archive.jpg": Item(_zip, "not an image"),
    "script.dcm": Item(_bytes(b"#!/bin/sh\necho hello\n" * 20), "DICOM"),
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every `CORPUS` item into `folder` -> {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, item in CORPUS.items():
        item.write(folder / name)
        out[name] = folder / name
    return out
