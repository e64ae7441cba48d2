"""DICOM reading: Modality LUT, VOI window / LUT, MONOCHROME1, padding, metadata, and refusals."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from bad_inputs import corrupt_dicom
from fixtures_images import gradient, truncate, write_dicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGLSLossless

from cxrvlm.io import ImageReadError, probe_image, read_image

STORED = gradient(48, 40, maxval=4095, dtype=np.uint16)  # 12-bit values in 16-bit words


def _minmax(a):
    a = np.asarray(a, dtype=np.float64)
    return (a - a.min()) / (a.max() - a.min())


def _linear_window(x, center, width):
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window, to [0, 1]."""
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _error(path, **kwargs) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    assert str(path) in str(info.value)
    return str(info.value)


def test_monochrome2_min_max_and_metadata(tmp_path):
    path = write_dicom(
        tmp_path / "a.dcm", STORED, bits_stored=12, ViewPosition="PA", PixelSpacing=[0.139, 0.143],
        PatientID="P42", StudyInstanceUID="1.2.3.4",
    )
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, _minmax(STORED), atol=1e-6)
    m = image.meta
    assert (m.format, m.source_size, m.bit_depth, m.photometric, m.scaling) == (
        "dicom", (48, 40), 12, "MONOCHROME2", "min_max")
    assert (m.view_position, m.patient_id, m.study_uid, m.modality) == ("PA", "P42", "1.2.3.4", "DX")
    assert m.pixel_spacing == pytest.approx((0.139, 0.143))


@pytest.mark.parametrize("given, expected", [("LL", "LATERAL"), ("AP", "AP"), ("", None), (None, None)])
def test_view_position(tmp_path, given, expected):
    extra = {} if given is None else {"ViewPosition": given}
    assert read_image(write_dicom(tmp_path / "v.dcm", STORED, **extra)).meta.view_position == expected


def test_monochrome1_is_inverted(tmp_path):
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", STORED, photometric="MONOCHROME2")).pixels
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", STORED, photometric="MONOCHROME1")).pixels
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-6)
    assert not np.allclose(m1, m2)


def test_monochrome1_window_is_inverted_after_windowing(tmp_path):
    kw = {"WindowCenter": 1500, "WindowWidth": 1000}
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", STORED, photometric="MONOCHROME2", **kw)).pixels
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", STORED, photometric="MONOCHROME1", **kw)).pixels
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-6)


def test_window_center_width(tmp_path):
    image = read_image(write_dicom(tmp_path / "w.dcm", STORED, bits_stored=12, WindowCenter=2048, WindowWidth=1024))
    assert image.meta.scaling == "window"
    np.testing.assert_allclose(image.pixels, _linear_window(STORED, 2048, 1024), atol=1e-5)
    assert (image.pixels == 0).any() and (image.pixels == 1).any()  # the window clips both ends


def test_first_of_several_windows_is_used(tmp_path):
    path = write_dicom(tmp_path / "w.dcm", STORED, WindowCenter=[1000, 3000], WindowWidth=[400, 2000])
    np.testing.assert_allclose(read_image(path).pixels, _linear_window(STORED, 1000, 400), atol=1e-5)


def test_sigmoid_window(tmp_path):
    path = write_dicom(tmp_path / "s.dcm", STORED, WindowCenter=2000, WindowWidth=800, VOILUTFunction="SIGMOID")
    expected = 1.0 / (1.0 + np.exp(-4.0 * (STORED - 2000.0) / 800.0))
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-5)


def test_rescale_slope_intercept_applied_before_window(tmp_path):
    # modality values = 2 * stored - 1000 lie in [-1000, 7190]; the window is in modality units
    path = write_dicom(
        tmp_path / "r.dcm", STORED, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=1000, WindowWidth=2000
    )
    expected = _linear_window(2.0 * STORED - 1000.0, 1000, 2000)
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-5)
    # the same window on the stored values would give a different image
    assert not np.allclose(expected, _linear_window(STORED, 1000, 2000), atol=0.05)


def test_signed_pixels(tmp_path):
    arr = (gradient(20, 20, maxval=2000, dtype=np.float64) - 1000).astype(np.int16)
    image = read_image(write_dicom(tmp_path / "s.dcm", arr, WindowCenter=0, WindowWidth=1001))
    np.testing.assert_allclose(image.pixels, _linear_window(arr, 0, 1001), atol=1e-5)


def test_voi_lut_sequence(tmp_path):
    lut = (np.sqrt(np.arange(4096) / 4095.0) * 1000).astype(np.uint16)  # a gamma-like table, output 0..999
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = lut.astype("<u2").tobytes()  # OW, as most writers store it
    image = read_image(write_dicom(tmp_path / "l.dcm", STORED, VOILUTSequence=[item]))
    assert image.meta.scaling == "voi_lut"
    np.testing.assert_allclose(image.pixels, lut[STORED] / lut.max(), atol=1e-6)


def test_pixel_padding_is_black_and_left_out_of_min_max(tmp_path):
    arr = np.minimum(STORED, 3000)
    arr[:, :5] = 4095  # a padded border, as CR readers mark outside the exposed field
    image = read_image(write_dicom(tmp_path / "p.dcm", arr, PixelPaddingValue=4095))
    assert (image.pixels[:, :5] == 0).all()
    real = arr < 4095
    lo, hi = arr[real].min(), arr[real].max()
    np.testing.assert_allclose(image.pixels[real], (arr[real] - lo) / (hi - lo), atol=1e-6)


def test_rgb_dicom_becomes_luma(tmp_path):
    rgb = np.stack([gradient(16, 12), gradient(16, 12)[::-1], np.full((16, 12), 90, np.uint8)], axis=-1)
    image = read_image(write_dicom(tmp_path / "c.dcm", rgb, photometric="RGB"))
    expected = (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) / 255.0
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)


@pytest.mark.parametrize("implicit", [False, True])
def test_dicom_without_preamble(tmp_path, implicit):
    path = write_dicom(tmp_path / "bare.dcm", STORED, preamble=False, implicit_vr=implicit, ViewPosition="AP")
    assert path.read_bytes()[128:132] != b"DICM"
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, _minmax(STORED), atol=1e-6)
    assert image.meta.view_position == "AP"
    renamed = path.rename(tmp_path / "bare.bin")  # found by content, not by name
    assert read_image(renamed).meta.format == "dicom"


def test_invalid_window_falls_back_to_min_max(tmp_path, caplog):
    path = write_dicom(tmp_path / "w0.dcm", STORED, WindowCenter=100, WindowWidth=0)
    with caplog.at_level(logging.WARNING, logger="cxrvlm.io.dicom"):
        image = read_image(path)
    assert image.meta.scaling == "min_max" and "unusable VOI" in caplog.text
    np.testing.assert_allclose(image.pixels, _minmax(STORED), atol=1e-6)


def test_multi_frame_refused(tmp_path):
    path = write_dicom(tmp_path / "mf.dcm", np.stack([STORED, STORED[::-1]]))
    assert "multi-frame DICOM (2 frames)" in _error(path)


def test_non_image_dicom_refused(tmp_path):
    message = _error(write_dicom(tmp_path / "sr.dcm", None))
    assert "not an image" in message and "no Pixel Data" in message and "SR" in message


def test_text_named_dcm_refused(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("Findings: no acute disease.\nImpression: normal chest.\n")
    assert "not a valid DICOM file" in _error(path)


@pytest.mark.parametrize("keep", [0.05, 0.6, 0.99])
def test_truncated_dicom(tmp_path, keep):
    path = truncate(write_dicom(tmp_path / "cut.dcm", STORED), keep)
    assert "truncated or corrupt" in _error(path)


def test_probe_reads_header_of_file_with_cut_pixels(tmp_path):
    path = truncate(write_dicom(tmp_path / "cut.dcm", STORED, ViewPosition="PA"), 0.6)
    meta = probe_image(path)
    assert (meta.source_size, meta.view_position, meta.scaling) == ((48, 40), "PA", None)


def test_pixel_limit_uses_rows_and_columns(tmp_path):
    # the header claims 30000 x 30000 while the file holds a small image: refused before any pixel is read
    path = write_dicom(tmp_path / "bomb.dcm", STORED, Rows=30000, Columns=30000)
    assert "900,000,000 pixels" in _error(path)
    assert "limit of 1,000" in _error(write_dicom(tmp_path / "small.dcm", STORED), max_pixels=1000)


def test_unsupported_transfer_syntax(tmp_path):
    path = write_dicom(tmp_path / "mpeg.dcm", STORED, transfer_syntax="1.2.840.10008.1.2.4.100")
    assert "unsupported DICOM transfer syntax MPEG2" in _error(path)


@pytest.mark.skipif(get_decoder(JPEGLSLossless).is_available, reason="a JPEG-LS decoder is installed here")
def test_missing_decoder_names_the_extra(tmp_path):
    path = write_dicom(tmp_path / "jls.dcm", STORED, transfer_syntax=JPEGLSLossless)
    message = _error(path)
    assert "no decoder installed" in message and "cxrvlm[dicom-codecs]" in message


def test_unsupported_photometric(tmp_path):
    path = write_dicom(tmp_path / "pal.dcm", STORED.astype(np.uint8), photometric="PALETTE COLOR")
    assert "unsupported DICOM Photometric Interpretation 'PALETTE COLOR'" in _error(path)


@pytest.mark.parametrize("how, reason", [
    ("bad_vr", "NotImplementedError: Unknown Value Representation 'ZZ' in tag (0028,0010)"),
    ("odd_length", "BytesLengthException: Expected total bytes to be an even multiple"),
    ("huge_length", "truncated or corrupt DICOM file"),
    ("cut_in_element", "truncated or corrupt DICOM file"),
])
@pytest.mark.parametrize("probe", [False, True])
def test_corrupt_header_is_a_clear_error(tmp_path, how, reason, probe):
    # issue 17 row 4: a bad VR or an odd value length raised NotImplementedError / struct.error (HTTP 500) at the
    # first line that read the element; every element is now converted while the file is parsed
    path = corrupt_dicom(write_dicom(tmp_path / f"{how}.dcm", STORED, bits_stored=12), how)
    with pytest.raises(ImageReadError) as info:
        (probe_image if probe else read_image)(path)
    assert str(path) in str(info.value) and reason in str(info.value)
    assert "To replace this error" not in str(info.value)  # pydicom's advice on its own config is cut


def test_pydicom_complaints_are_one_line_naming_the_file(tmp_path, caplog, capsys):
    # issue 17 row 12: pydicom logged each problem and warned it again (a UserWarning with its source line)
    with pytest.warns(UserWarning):  # pydicom complains while writing them too
        path = write_dicom(tmp_path / "uid.dcm", STORED, bits_stored=12, StudyInstanceUID="1.2.abc..x",
                           SeriesInstanceUID="9.x")
    caplog.clear()
    capsys.readouterr()
    with caplog.at_level(logging.DEBUG):
        image = read_image(path)
    assert image.pixels.shape == STORED.shape
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1 and records[0].name == "cxrvlm.io.dicom"
    line = records[0].getMessage()
    assert line.startswith(f"{path}: DICOM has 2 problem(s): Invalid value for VR UI: '1.2.abc..x'")
    assert "\n" not in line and "Please see" not in line
    assert capsys.readouterr().err == ""  # no warning printed beside it


def test_a_clean_dicom_logs_nothing(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        read_image(write_dicom(tmp_path / "ok.dcm", STORED, bits_stored=12))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
