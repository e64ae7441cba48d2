"""Writers for synthetic image files in a test's tmp_path: PNG (1/8/16-bit, RGB, palette), TIFF, JPEG (with EXIF
orientation), DICOM (MONOCHROME1/2, rescale, window, multi-frame, no pixel data, no preamble), a decompression
bomb PNG, and truncation.

Import from a test (the tests folder is on sys.path through its conftest.py):

    from fixtures_images import gradient, write_png, write_dicom
    path = write_png(tmp_path / "a.png", gradient(64, 48))

Every writer takes the target path, writes one file and returns the path.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def gradient(height: int = 64, width: int = 48, maxval: int = 255, dtype: Any = np.uint8) -> np.ndarray:
    """A (height, width) test image: a diagonal ramp from 0 to `maxval` with a bright square, so orientation
    and scaling mistakes show (no two flips of it are equal)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    ramp = (y / max(height - 1, 1) * 0.7 + x / max(width - 1, 1) * 0.3) * 0.8
    ramp[height // 8 : height // 3, width // 6 : width // 2] = 1.0  # off-centre block, asymmetric in both axes
    return np.rint(ramp * maxval).astype(dtype)


def write_png(path: Path, arr: np.ndarray) -> Path:
    """PNG from uint8 (H, W) -> 8-bit gray, uint16 (H, W) -> 16-bit gray, bool -> 1-bit, (H, W, 3|4) uint8 -> RGB(A)."""
    Image.fromarray(np.asarray(arr)).save(path, format="PNG")
    return Path(path)


def write_palette_png(path: Path, arr: np.ndarray) -> Path:
    """Palette ("P") PNG of a uint8 (H, W, 3) RGB array (at most 256 colours, so the colours are kept exactly)."""
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE).save(path, "PNG")
    return Path(path)


def write_tiff(path: Path, arr: np.ndarray, orientation: int | None = None) -> Path:
    """Uncompressed TIFF of uint8/uint16/float32 (H, W) or uint8 (H, W, 3); optional TIFF Orientation tag (1-8)."""
    im = Image.fromarray(np.asarray(arr))
    kwargs: dict[str, Any] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    im.save(path, format="TIFF", **kwargs)
    return Path(path)


def write_jpeg(path: Path, arr: np.ndarray, orientation: int | None = None, quality: int = 95) -> Path:
    """JPEG of uint8 (H, W) gray or (H, W, 3) RGB; `orientation` (1-8) is written as the EXIF Orientation tag."""
    im = Image.fromarray(np.asarray(arr, dtype=np.uint8))
    kwargs: dict[str, Any] = {"quality": quality}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    im.save(path, format="JPEG", **kwargs)
    return Path(path)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, height: int, width: int) -> Path:
    """A valid, all-black 1-bit PNG of (height, width) written without allocating it: a 20000 x 20000 file is
    ~60 kB on disk but 400 M pixels decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale, no interlace
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    Path(path).write_bytes(data)
    return Path(path)


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to the first `keep` fraction of its bytes (at least 1 byte), in place."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: max(1, int(len(data) * keep))])
    return Path(path)


def write_dicom(
    path: Path,
    arr: np.ndarray | None,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    preamble: bool = True,
    implicit_vr: bool = False,
    transfer_syntax: str | None = None,
    **elements: Any,
) -> Path:
    """A DICOM file (DX modality) of `arr`: uint8/uint16/int16 (H, W), (frames, H, W) for multi-frame, (H, W, 3)
    uint8 for RGB, or None for a dataset without Pixel Data (a Basic Text SR).

    `elements` are set as DICOM keywords, e.g. RescaleSlope=2, WindowCenter=100, WindowWidth=50, ViewPosition="PA".
    `preamble=False` writes the bare dataset: no 128-byte preamble, no "DICM", no file meta (old writers).
    `transfer_syntax` only labels the file (e.g. a compressed syntax): the pixel bytes are written as given,
    encapsulated when the syntax is compressed, so the file is valid to parse but not necessarily to decode.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        UID,
        BasicTextSRStorage,
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        generate_uid,
    )

    sop_class = DigitalXRayImageStorageForPresentation if arr is not None else BasicTextSRStorage
    syntax = UID(transfer_syntax or (ImplicitVRLittleEndian if implicit_vr else ExplicitVRLittleEndian))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "PAT001"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    if arr is not None:
        _set_pixels(ds, np.asarray(arr), photometric, bits_stored, syntax, encapsulate)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        bare = pydicom.Dataset(ds)  # drops preamble and file meta
        pydicom.dcmwrite(path, bare, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    return Path(path)


def _set_pixels(
    ds: Any, arr: np.ndarray, photometric: str, bits_stored: int | None, syntax: Any, encapsulate: Any
) -> None:
    colour = arr.ndim == 3 and arr.shape[-1] == 3 and photometric == "RGB"
    frames = arr.shape[0] if arr.ndim == 3 and not colour else 1
    ds.Rows, ds.Columns = (arr.shape[0], arr.shape[1]) if colour or arr.ndim == 2 else arr.shape[1:3]
    if frames > 1:
        ds.NumberOfFrames = frames
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if np.issubdtype(arr.dtype, np.signedinteger) else 0
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    if syntax.is_compressed:
        ds.PixelData = encapsulate([data])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = data
        ds["PixelData"].VR = "OW" if bits > 8 else "OB"
