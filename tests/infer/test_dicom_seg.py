"""A reading's lung masks as a DICOM Segmentation of its DICOM film, read back with highdicom."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_images import write_dicom

from cxrvlm.infer.dicom_seg import is_dicom, write_lung_segmentation
from cxrvlm.tokens.rle import rle_encode

hd = pytest.importorskip("highdicom")


def _reading(h: int, w: int) -> tuple[dict, np.ndarray, np.ndarray]:
    right, left = np.zeros((h, w), bool), np.zeros((h, w), bool)
    right[20:100, 10:40], left[20:100, 55:85] = True, True
    reading = {"model": "cxrvlm-effnet", "segmentations": [
        {"label": "right lung", "box": [10, 20, 40, 100], "mask": rle_encode(right), "score": 0.5},
        {"label": "left lung", "box": [55, 20, 85, 100], "mask": rle_encode(left), "score": 0.5}]}
    return reading, right, left


def test_masks_round_trip_as_a_segmentation_of_the_film(tmp_path: Path) -> None:
    import pydicom

    film = write_dicom(tmp_path / "film.dcm", (np.arange(128 * 96) % 4000).astype(np.uint16).reshape(128, 96),
                       StudyInstanceUID=pydicom.uid.generate_uid())  # no birth date etc.: Type 2, added empty
    reading, right, left = _reading(128, 96)
    out = write_lung_segmentation(reading, film, tmp_path / "film.seg.dcm")
    seg = hd.seg.segread(out)
    source = pydicom.dcmread(film)
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.number_of_segments == 2
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["right lung", "left lung"]
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], combine_segments=False)
    assert np.array_equal(pixels[0, :, :, 0], right) and np.array_equal(pixels[0, :, :, 1], left)
    assert is_dicom(film) and not is_dicom(tmp_path / "nothing.png")


def test_no_mask_no_file_and_a_mismatch_is_named(tmp_path: Path) -> None:
    film = write_dicom(tmp_path / "film.dcm", np.zeros((64, 64), np.uint16))
    assert write_lung_segmentation({"segmentations": []}, film, tmp_path / "x.seg.dcm") is None
    assert not (tmp_path / "x.seg.dcm").exists()
    with pytest.raises(ValueError, match="film.dcm: the masks are"):
        write_lung_segmentation(_reading(128, 96)[0], film, tmp_path / "x.seg.dcm")
