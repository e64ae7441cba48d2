"""DICOM files written by other software (the small test files pydicom ships): byte orders, compressions, a
TIFF-looking preamble, and files to refuse."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGLSLossless

from cxrvlm.io import ImageReadError, read_image

FILES = Path(pydicom.__file__).parent / "data" / "test_files"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on non-conformant test files


def _file(name: str) -> Path:
    path = FILES / name
    if not path.is_file():
        pytest.skip(f"pydicom does not ship {name} in this version")
    return path


def _mr_expected() -> np.ndarray:
    """MR_small: signed 16-bit, Window Center 600 / Width 1600 (LINEAR, PS3.3 C.11.2.1.2.1)."""
    stored = pydicom.dcmread(_file("MR_small.dcm")).pixel_array.astype(np.float64)
    return np.clip((stored - 599.5) / 1599.0 + 0.5, 0.0, 1.0)


@pytest.mark.parametrize(
    "name",
    ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm", "MR_small_RLE.dcm",
     "MR_small_jp2klossless.dcm"],
)
def test_one_image_in_every_encoding_reads_the_same(name):
    image = read_image(_file(name))
    assert image.meta.scaling == "window" and image.meta.modality == "MR"
    np.testing.assert_allclose(image.pixels, _mr_expected(), atol=1e-5)


def test_tiff_header_in_the_preamble_is_still_dicom():
    path = _file("CT_small.dcm")
    assert path.read_bytes()[:4] == b"II*\x00"  # the preamble starts like a TIFF
    image = read_image(path)
    assert image.meta.format == "dicom" and image.meta.scaling == "min_max"
    hu = pydicom.dcmread(path).pixel_array.astype(np.float64) - 1024.0  # Rescale Intercept -1024
    np.testing.assert_allclose(image.pixels, (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)


def test_jpeg_ls_reads_or_names_the_extra():
    path = _file("MR_small_jpeg_ls_lossless.dcm")
    if get_decoder(JPEGLSLossless).is_available:
        np.testing.assert_allclose(read_image(path).pixels, _mr_expected(), atol=1e-5)
    else:
        with pytest.raises(ImageReadError, match=r"cxrvlm\[dicom-codecs\]"):
            read_image(path)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("MR_truncated.dcm", "truncated or corrupt"),
        ("rtplan.dcm", "not an image: the DICOM has no Pixel Data (SOP class RT Plan Storage)"),
        ("examples_palette.dcm", "unsupported DICOM Photometric Interpretation 'PALETTE COLOR'"),
        ("SC_rgb_rle_2frame.dcm", "multi-frame DICOM (2 frames)"),
    ],
)
def test_refused_with_reason(name, reason):
    with pytest.raises(ImageReadError) as info:
        read_image(_file(name))
    assert reason in str(info.value) and name in str(info.value)
