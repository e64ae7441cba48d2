"""A big PNG decoded a band of rows at a time, so it never exists whole in memory.

Pillow decodes a PNG into one buffer (4 bytes a pixel for RGB: 196 MB for 7000 x 7000). Here the zlib stream of the
IDAT chunks is inflated as it is read, and each band of filtered rows is handed to Pillow as a small PNG of its own,
led by the band before's last row written unfiltered (PNG filter type 0): the rows' Up / Average / Paeth filters
then see the right previous row, and Pillow's own unfiltering and unpacking give exactly the pixels a whole decode
gives. Supported: non-interlaced PNGs of 8-bit samples (gray, gray + alpha, RGB, RGBA, palette) and 16-bit gray,
the kinds whose decoded rows turn back into the file's raw bytes; `read_header` returns None for the rest.
"""
from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from cxrvlm.io.image import ImageReadError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
BAND_BYTES = 2 << 20  # raw bytes per band (rows are never split); its float64 gray is 4-11 times that
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_COPIED = (b"PLTE", b"tRNS")  # chunks before IDAT that the bands need to decode the same (palette, transparency)
_READ = 1 << 20  # file bytes read (and inflated) at a time


@dataclass
class Header:
    width: int
    height: int
    depth: int
    colour: int
    chunks: list[bytes] = field(default_factory=list)  # PLTE / tRNS, as written (length, type, data, CRC)

    @property
    def row_bytes(self) -> int:
        """Bytes of one filtered row: the filter-type byte and the packed samples."""
        return 1 + (self.width * _CHANNELS[self.colour] * self.depth + 7) // 8

    def ihdr(self, height: int) -> bytes:
        return _chunk(b"IHDR", struct.pack(">IIBBBBB", self.width, height, self.depth, self.colour, 0, 0, 0))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(type, length) of each chunk, `f` left at its data; the caller reads or skips the data, this skips the CRC."""
    while True:
        start = f.read(8)
        if len(start) < 8:
            return
        length, kind = struct.unpack(">I4s", start)
        data_at = f.tell()
        yield kind, length
        f.seek(data_at + length + 4)


def read_header(path: Path) -> Header | None:
    """The PNG's header and the chunks bands need, or None when it is not a kind this module decodes."""
    with open(path, "rb") as f:
        if f.read(8) != SIGNATURE:
            return None
        header = None
        for kind, length in _chunks(f):
            if kind == b"IHDR" and length == 13:
                width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", f.read(13))
                supported = interlace == 0 and ((depth == 8 and colour in _CHANNELS) or (depth, colour) == (16, 0))
                if not supported:
                    return None
                header = Header(width, height, depth, colour)
            elif kind in _COPIED and header is not None:
                header.chunks.append(_chunk(kind, f.read(length)))
            elif kind in (b"IDAT", b"IEND"):
                return header
    return None


def find_chunk(path: Path, kind: bytes) -> bytes | None:
    """The data of the first chunk of this type in a PNG file, or None; chunks are skipped, not read."""
    with open(path, "rb") as f:
        if f.read(len(SIGNATURE)) != SIGNATURE:
            return None
        for found, length in _chunks(f):
            if found == kind:
                return f.read(length)
            if found == b"IEND":
                return None
    return None


def _idat_data(f: BinaryIO) -> Iterator[bytes]:
    """The concatenated IDAT data (the zlib stream), read `_READ` bytes at a time."""
    for kind, length in _chunks(f):
        if kind == b"IEND":
            return
        if kind == b"IDAT":
            left = length
            while left > 0:
                piece = f.read(min(left, _READ))
                if not piece:
                    return
                left -= len(piece)
                yield piece


def _inflated(f: BinaryIO) -> Iterator[bytes]:
    """The zlib stream inflated in pieces of at most `_READ` bytes (a bomb never inflates at once)."""
    inflate = zlib.decompressobj()
    for data in _idat_data(f):
        while data:
            yield inflate.decompress(data, _READ)
            data = inflate.unconsumed_tail


def _raw_row(band: Image.Image, depth: int) -> bytes:
    """The last row of a decoded band as the file stores it unfiltered (16-bit samples are big-endian)."""
    row = np.asarray(band)[-1]
    return row.astype(">u2").tobytes() if depth == 16 else row.tobytes()


def bands(path: Path, header: Header) -> Iterator[Image.Image]:
    """The image's rows top to bottom, as loaded Pillow images of whole rows (every band but the last holds
    `BAND_BYTES // row_bytes` rows). Raises ImageReadError when the data ends early."""
    stride = header.row_bytes
    rows_per_band = max(1, BAND_BYTES // stride)
    pending, done, previous = bytearray(), 0, b""
    with open(path, "rb") as f:
        f.seek(len(SIGNATURE))
        stream = _inflated(f)
        while done < header.height:
            n = min(rows_per_band, header.height - done)
            while len(pending) < n * stride:
                piece = next(stream, None)
                if piece is None:
                    raise ImageReadError(path, f"truncated or corrupt PNG file: image data ends after row "
                                               f"{done + len(pending) // stride} of {header.height}")
                pending += piece
            lead = b"\x00" + previous if previous else b""
            body = lead + bytes(pending[:n * stride])
            del pending[:n * stride]
            png = (SIGNATURE + header.ihdr(n + bool(lead)) + b"".join(header.chunks)
                   + _chunk(b"IDAT", zlib.compress(body, 0)) + _chunk(b"IEND", b""))
            band = Image.open(io.BytesIO(png), formats=("PNG",))
            band.load()
            previous = _raw_row(band, header.depth)
            yield band.crop((0, 1, header.width, n + 1)) if lead else band
            done += n
