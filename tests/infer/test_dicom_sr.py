"""A reading as a DICOM SR (TID 1500) of its DICOM film, read back with highdicom."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_images import write_dicom

from cxrvlm.infer.dicom_sr import write_report

hd = pytest.importorskip("highdicom")


def test_the_reading_round_trips_as_a_measurement_report(tmp_path: Path) -> None:
    import pydicom

    film = write_dicom(tmp_path / "film.dcm", (np.arange(128 * 96) % 4000).astype(np.uint16).reshape(128, 96),
                       StudyInstanceUID=pydicom.uid.generate_uid())
    reading = {"model": "cxrvlm-effnet", "tb": {"probability": 0.12, "label": "normal"},
               "verdict": {"label": "abnormal, not tuberculosis", "called": ["pneumonia"], "source": "label head"},
               "findings": [{"label": "pneumonia", "probability": 0.7}, {"label": "edema", "probability": 0.05}]}
    sr = hd.sr.srread(write_report(reading, film, tmp_path / "film.sr.dcm"))
    assert sr.StudyInstanceUID == pydicom.dcmread(film).StudyInstanceUID
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("PARTIAL", "UNVERIFIED")
    (group,) = hd.sr.MeasurementReport.from_sequence([sr]).get_image_measurement_groups()
    values = {m.name.meaning: m.value for m in group.get_measurements()}
    assert values == {"tuberculosis probability": 0.12, "pneumonia probability": 0.7, "edema probability": 0.05}
    calls = {q.name.meaning: q.value.meaning for q in group.get_qualitative_evaluations()}
    assert calls == {"tuberculosis": "Absent", "pneumonia": "Present"}
    assert write_report({"tb": None}, film, tmp_path / "none.sr.dcm") is None
