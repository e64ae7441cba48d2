"""DICOM through pydicom.

Pipeline (DICOM PS3.3 C.11, the order a viewer applies): stored values -> Modality LUT (Rescale Slope/Intercept
or Modality LUT Sequence) -> VOI (VOI LUT Sequence, else the first Window Center/Width) scaled by the VOI output
range to [0, 1]; without a VOI, min-max over the image (as torchxrayvision does). MONOCHROME1 (higher value =
darker) is then inverted so every image looks like MONOCHROME2: air dark, bone bright. Pixel Padding Value pixels
(outside the exposed field) are left out of min-max and set to 0.

Refused, with the reason: files without Pixel Data (structured reports, presentation states), multi-frame
images, more pixels than `max_pixels` (checked on Rows x Columns before the pixel data is read), colour models
other than MONOCHROME1/2, RGB and YBR, and transfer syntaxes pydicom cannot decode here (the message says which
extra installs a decoder).
"""
from __future__ import annotations

import logging
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cxrvlm.io.image import ImageMeta, ImageReadError, XrayImage, check_pixel_count, luma, min_max
from cxrvlm.records import normalise_view_position

log = logging.getLogger(__name__)

CODECS_HINT = "pip install 'cxrvlm[dicom-codecs]'"
_DEFER_BYTES = 64 * 1024  # larger values (Pixel Data) are read only when used, i.e. after the size check
_MONO = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420")
# What pydicom raises on a damaged file: while parsing (EOFError, OSError, struct.error) and when a raw element is
# converted on first access (NotImplementedError for an unknown VR, struct.error / ValueError / UnicodeDecodeError
# for a value whose bytes do not fit its VR, BytesLengthException for a length that is no multiple of its VR's
# size, OverflowError for an absurd number).
_CORRUPT = (EOFError, OSError, ValueError, KeyError, TypeError, IndexError, OverflowError, struct.error,
            NotImplementedError, BytesLengthException)
_PIXEL_TAGS = frozenset(Tag(t) for t in (0x7FE00010, 0x7FE00008, 0x7FE00009))  # (Float/Double) Pixel Data
_SHOWN_PROBLEMS = 3  # pydicom messages quoted in a file's one log line
# pydicom reports a file's problems as warnings and on its "pydicom" logger, both process-wide: reads that
# collect them are serialised so one file's messages are not counted against another's.
_CAPTURE_LOCK = threading.Lock()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())


@contextmanager
def _one_line_of_problems(path: Path) -> Iterator[None]:
    """pydicom's warnings and log records while reading `path` -> one WARNING line of this module naming the file
    (pydicom logs each problem and warns it too, and may add a traceback: a screenful per file otherwise)."""
    handler, pydicom_log = _Collect(), logging.getLogger("pydicom")
    with _CAPTURE_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        propagate, pydicom_log.propagate = pydicom_log.propagate, False
        pydicom_log.addHandler(handler)
        try:
            yield
        finally:
            pydicom_log.removeHandler(handler)
            pydicom_log.propagate = propagate
    problems = list(dict.fromkeys(handler.messages + [str(w.message) for w in caught]))
    if problems:
        shown = "; ".join(m.split(". Please see")[0][:160] for m in problems[:_SHOWN_PROBLEMS])
        more = f" (+{len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
        log.warning("%s: DICOM has %d problem(s): %s%s", path, len(problems), shown, more)


def _read_dataset(path: Path, head: bytes) -> Dataset:
    # force=True only for files without the "DICM" marker: it makes pydicom parse whatever it is given, which is
    # right for a preamble-less dataset that `detect_format` already recognised and wrong for anything else.
    force = not (len(head) >= 132 and head[128:132] == b"DICM")
    try:
        ds = pydicom.dcmread(path, force=force, defer_size=_DEFER_BYTES)
        _convert_elements(ds)
    except InvalidDicomError as e:
        raise ImageReadError(path, f"not a valid DICOM file: {e}") from e
    except MemoryError as e:
        raise ImageReadError(path, "not enough memory to parse this DICOM file") from e
    except _CORRUPT as e:
        reason = str(e).split(" To replace this error")[0]  # pydicom's advice on its config is not for a user
        raise ImageReadError(path, f"truncated or corrupt DICOM file: {type(e).__name__}: {reason}") from e
    if len(ds) == 0:
        if not force:  # "DICM" and file meta were there, nothing after them
            raise ImageReadError(path, "truncated or corrupt DICOM file: no data set after the file meta")
        raise ImageReadError(path, "not a valid DICOM file: no data elements could be parsed")
    if force and not any(k in ds for k in ("SOPClassUID", "PixelData", "Rows", "Modality")):
        # a forced parse turns any bytes into "elements"; without one element every image has, it was not DICOM
        raise ImageReadError(path, "not a valid DICOM file: no DICM marker and no recognisable DICOM elements")
    return ds


def _convert_elements(ds: Dataset) -> None:
    """Convert every element but the pixel data now: pydicom converts raw bytes on first access, so a bad VR or a
    value of the wrong length would otherwise raise at whichever later line happens to read it."""
    for tag in list(ds.keys()):
        if BaseTag(tag) in _PIXEL_TAGS:
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _convert_elements(item)


def _transfer_syntax(path: Path, ds: Dataset) -> UID:
    """The file's transfer syntax; a preamble-less file without file meta gets the encoding pydicom detected."""
    uid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if uid is None:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if little is None:
            raise ImageReadError(path, "DICOM has no Transfer Syntax UID and its encoding cannot be detected")
        uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        if not hasattr(ds, "file_meta"):
            ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = uid
    return UID(str(uid))


def _check_decoder(path: Path, uid: UID) -> None:
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as e:
        raise ImageReadError(path, f"unsupported DICOM transfer syntax {uid.name or uid} ({uid})") from e
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise ImageReadError(
            path,
            f"no decoder installed for DICOM transfer syntax {uid.name} ({uid}); install one with "
            f"`{CODECS_HINT}` (pydicom can use: {missing})",
        )


def _check_image(path: Path, ds: Dataset, max_pixels: int) -> None:
    """Refuse what this reader cannot turn into one 2-D image, before any pixel data is read."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise ImageReadError(path, "DICOM float pixel data (parametric maps) is not supported")
        sop = UID(str(ds.get("SOPClassUID", ""))).name
        if "Image Storage" in sop or "Rows" in ds:
            # pydicom stops quietly at the end of a file: an image class without pixels is a cut-off file
            raise ImageReadError(path, f"truncated or corrupt DICOM file: a {sop or 'DICOM image'} without Pixel Data")
        raise ImageReadError(path, f"not an image: the DICOM has no Pixel Data (SOP class {sop or 'not given'})")
    frames = ds.get("NumberOfFrames") or 1
    try:
        frames = int(frames)
    except (TypeError, ValueError):
        raise ImageReadError(path, f"DICOM Number of Frames {frames!r} is not a number") from None
    if frames > 1:
        raise ImageReadError(path, f"multi-frame DICOM ({frames} frames) is not supported; export single frames")
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if not rows or not cols:
        raise ImageReadError(path, "DICOM image is missing Rows or Columns")
    check_pixel_count(path, int(rows), int(cols), max_pixels)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if not ((photometric in _MONO and samples == 1) or (photometric in _COLOUR and samples == 3)):
        raise ImageReadError(
            path, f"unsupported DICOM Photometric Interpretation {photometric!r} with {samples} sample(s) per pixel"
        )
    _check_decoder(path, _transfer_syntax(path, ds))


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            if value is not None and len(value) == 2:
                return (float(value[0]), float(value[1]))
        except (TypeError, ValueError):
            log.debug("ignoring malformed %s %r", keyword, value)
    return None


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None:
        return None
    return str(value).strip() or None


def _meta(path: Path, ds: Dataset) -> ImageMeta:
    return ImageMeta(
        path=str(path),
        format="dicom",
        source_size=(int(ds.Rows), int(ds.Columns)),
        bit_depth=int(ds.get("BitsStored") or ds.get("BitsAllocated") or 0),
        photometric=str(ds.PhotometricInterpretation).strip(),
        view_position=normalise_view_position(_text(ds, "ViewPosition")),
        patient_id=_text(ds, "PatientID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        modality=_text(ds, "Modality"),
        pixel_spacing=_pixel_spacing(ds),
    )


def _padding_mask(ds: Dataset, stored: np.ndarray) -> np.ndarray | None:
    """True where Pixel Padding Value (or the padding range up to Pixel Padding Range Limit) marks no image."""
    value = ds.get("PixelPaddingValue")
    if value is None:
        return None
    limit = ds.get("PixelPaddingRangeLimit", value)
    lo, hi = min(int(value), int(limit)), max(int(value), int(limit))
    mask = (stored >= lo) & (stored <= hi)
    return mask if mask.any() and not mask.all() else None


def _voi_kind(ds: Dataset) -> str | None:
    """"voi_lut", "window" or None, with pydicom's preference (a VOI LUT table over a window when both are there)."""
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        return "voi_lut"
    if ds.get("WindowCenter") not in (None, "") and ds.get("WindowWidth") not in (None, ""):
        return "window"
    return None


def _apply_voi(ds: Dataset, values: np.ndarray, kind: str) -> np.ndarray:
    """VOI LUT or window, then scaled by the VOI's own output range (not the image's) to [0, 1]."""
    if kind == "voi_lut":
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        entries, first = int(descriptor[0]) or 2**16, int(descriptor[1])
        table = apply_voi(np.arange(first, first + entries), ds, 0)  # the whole LUT: its output range
        out = apply_voi(np.rint(values).astype(np.int64), ds, 0)  # LUT inputs are integers
        lo, hi = float(table.min()), float(table.max())
    else:
        out = apply_windowing(values, ds, 0)
        # pydicom windows into a range that depends on Bits Stored, sign and rescale; windowing two extreme
        # inputs gives its ends, so the [0, 1] scaling follows whatever range pydicom used.
        with np.errstate(over="ignore"):
            lo, hi = (float(v) for v in apply_windowing(np.array([-1e300, 1e300]), ds, 0))
    if hi == lo:
        raise ValueError(f"VOI output range is empty ({lo})")
    return np.clip((out - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _to_unit(path: Path, ds: Dataset, stored: np.ndarray) -> tuple[np.ndarray, str]:
    """Stored pixel values (H, W) or (H, W, 3) -> float32 (H, W) in [0, 1], MONOCHROME2, and the scaling used."""
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric not in _MONO:  # colour: pydicom already converted YBR to RGB
        full = float(2 ** int(ds.get("BitsStored") or 8) - 1)
        return np.clip(luma(stored) / full, 0.0, 1.0).astype(np.float32), "bit_depth"
    padding = _padding_mask(ds, stored)
    values = apply_modality_lut(stored, ds)
    kind = _voi_kind(ds)
    pixels = None
    if kind is not None:
        try:
            pixels = _apply_voi(ds, values, kind)
        except (ValueError, TypeError, IndexError, AttributeError, NotImplementedError) as e:
            log.warning("%s: ignoring unusable VOI %s (%s); using min-max instead", path, kind, e)
            kind = None
    if pixels is None:
        inside = values[~padding] if padding is not None else values
        lo, hi = float(inside.min()), float(inside.max())
        pixels = min_max(np.clip(values, lo, hi))
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
    if padding is not None:
        pixels[padding] = 0.0
    return pixels.astype(np.float32), kind or "min_max"


def read_dicom(path: Path, head: bytes, max_pixels: int, decode: bool = True) -> XrayImage | ImageMeta:
    """Read a single-frame DICOM image into an XrayImage; with `decode=False` only its header, as ImageMeta.
    pydicom's complaints about the file are logged as one warning line naming it."""
    with _one_line_of_problems(path):
        return _read_dicom(path, head, max_pixels, decode)


def _read_dicom(path: Path, head: bytes, max_pixels: int, decode: bool) -> XrayImage | ImageMeta:
    ds = _read_dataset(path, head)
    _check_image(path, ds, max_pixels)
    meta = _meta(path, ds)
    if not decode:
        return meta
    try:
        stored = ds.pixel_array
    except MemoryError as e:
        raise ImageReadError(path, "not enough memory to decode the DICOM pixel data") from e
    except Exception as e:  # noqa: BLE001 - decoder plugins raise arbitrary types on damaged data
        uid = UID(str(ds.file_meta.TransferSyntaxUID))
        # an installed plugin may lack a variant (Pillow: no 12-bit JPEG) that the pylibjpeg plugins decode
        missing = uid.is_compressed and any(m.startswith("pylibjpeg") for m in get_decoder(uid).missing_dependencies)
        hint = f"; other decoders may read {uid.name}: `{CODECS_HINT}`" if missing else ""
        raise ImageReadError(path, f"cannot decode DICOM pixel data (truncated or corrupt?): {e}{hint}") from e
    expected = meta.source_size if stored.ndim == 2 else (*meta.source_size, 3)
    if stored.shape != expected:
        raise ImageReadError(path, f"decoded pixel data has shape {stored.shape}, expected {expected}")
    pixels, meta.scaling = _to_unit(path, ds, stored)
    return XrayImage(pixels=np.ascontiguousarray(pixels), meta=meta)
