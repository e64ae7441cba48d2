"""A reading's lung masks as a DICOM Segmentation of the DICOM film they were read from (`highdicom`, the
`dicom-export` extra): one binary segment per mask (right lung, left lung; SNOMED CT "Lung"), marked as made by an
automatic algorithm (cxrvlm and its model), in the film's study and referencing it, so a PACS or viewer shows it over
the film.

    write_lung_segmentation(reading, "film.dcm", "film.seg.dcm")   # None when the reading has no mask

The film's own attributes are kept; Type 2 attributes it lacks (some writers leave out the patient's birth date,
say) are added empty on a copy, as the standard allows, so the Segmentation can name them.
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from cxrvlm.about import VERSION
from cxrvlm.io.detect import HEAD_BYTES, detect_format
from cxrvlm.tokens.rle import rle_decode

_EXTRA = "pip install 'cxrvlm[dicom-export]'"
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")
SERIES_NUMBER = 990  # of the Segmentation series: apart from a scanner's own series numbers


def require() -> ModuleType:
    """highdicom; ImportError naming the extra when it is not installed."""
    try:
        return importlib.import_module("highdicom")
    except ImportError:
        raise ImportError(f"DICOM Segmentation export needs highdicom: {_EXTRA}") from None


def is_dicom(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return detect_format(f.read(HEAD_BYTES)) == "dicom"
    except OSError:
        return False


def film_dataset(path: str | Path) -> Any:
    """The DICOM film as a pydicom dataset, with the Type 2 attributes it lacks added empty (a copy)."""
    pydicom = importlib.import_module("pydicom")
    ds = copy.deepcopy(pydicom.dcmread(str(path)))
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    for keyword in ("SeriesNumber", "InstanceNumber"):
        if keyword not in ds or ds[keyword].value in (None, ""):
            setattr(ds, keyword, 1)
    return ds


def write_lung_segmentation(reading: dict[str, Any], source: str | Path, out: str | Path) -> Path | None:
    """Write the reading's masks as a DICOM SEG of `source` (the DICOM file it read) to `out`; None, writing
    nothing, when the reading has no mask. ValueError naming the file when the masks do not fit its pixels."""
    masks = [s for s in reading.get("segmentations", []) if s.get("mask")]
    if not masks:
        return None
    hd = require()
    codes = importlib.import_module("pydicom.sr.codedict").codes
    film = film_dataset(source)
    size = (int(film.Rows), int(film.Columns))
    pixels = np.stack([rle_decode(m["mask"]) for m in masks], axis=-1)[None]  # (1, H, W, segments)
    if pixels.shape[1:3] != size:
        raise ValueError(f"{source}: the masks are {list(pixels.shape[1:3])} pixels, the film {list(size)}")
    algorithm = hd.AlgorithmIdentificationSequence(name="cxrvlm", version=VERSION,
                                                   family=codes.cid7162.ArtificialIntelligence)
    segments = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=m["label"], segmented_property_category=codes.cid7150.AnatomicalStructure,
        segmented_property_type=codes.SCT.Lung, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm) for i, m in enumerate(masks)]
    seg = hd.seg.Segmentation(
        source_images=[film], pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="cxrvlm",
        manufacturer_model_name=str(reading.get("model", "cxrvlm")), software_versions=VERSION,
        device_serial_number="none", series_description="cxrvlm lung segmentation (research use, not a diagnosis)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(str(out))
    return out
