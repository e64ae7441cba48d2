"""Format detection from a file's first bytes (magic numbers), so a JPEG named `.png` still reads as a JPEG and a
text file named `.png` is refused as "not an image" instead of failing somewhere inside a decoder."""
from __future__ import annotations

import struct

HEAD_BYTES = 132  # enough for the DICOM preamble (128 bytes) + "DICM"

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic")

# DICOM value representations: a dataset written without the 128-byte preamble starts with an element whose
# tag is in group 0x0002 (file meta) or 0x0008 (identification), in explicit VR (VR letters follow the tag) or
# implicit VR (a 4-byte length follows).
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)


def detect_format(head: bytes) -> str | None:
    """"png" / "jpeg" / "tiff" / "dicom" from the first `HEAD_BYTES` bytes of a file, or None if none matches."""
    # "DICM" first: a DICOM preamble may itself hold a TIFF header (dual-format files, e.g. from GE scanners)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PNG):
        return "png"
    if head.startswith(_JPEG):
        return "jpeg"
    if head[:4] in _TIFF:
        return "tiff"
    if looks_like_raw_dicom(head):
        return "dicom"
    return None


def looks_like_raw_dicom(head: bytes) -> bool:
    """True for a DICOM dataset written without preamble and "DICM" (older or non-conformant writers)."""
    if len(head) < 8:
        return False
    group, _element = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008):
        return False
    if head[4:6] in _VRS:  # explicit VR little endian
        return True
    (length,) = struct.unpack("<I", head[4:8])  # implicit VR little endian: a plausible, even value length
    return length < 1 << 16 and length % 2 == 0


def has_dicom_extension(name: str) -> bool:
    return name.lower().endswith(_DICOM_EXTENSIONS)
