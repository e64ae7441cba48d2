"""A reading as a DICOM Structured Report of the DICOM film it was read from (`highdicom`, the `dicom-export` extra):
a TID 1500 Measurement Report, Comprehensive 3D SR, partial and unverified (a machine's reading for a person to
confirm), observed by the device "cxrvlm" with its model, in the film's study and referencing it. One measurement
group holds the TB probability and every finding probability as measurements (unit "1"), and each finding the
label head calls as a qualitative evaluation "Present" (the TB verdict "Present" or "Absent").

    write_report(reading, "film.dcm", "film.sr.dcm")   # None when the reading has no verdict (not assessable)

The cxrvlm labels (and the procedure, "Chest radiograph") are coded in the private coding scheme `SCHEME`, their
phrases as meanings: they are the model's outputs, not SNOMED or LOINC concepts.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from cxrvlm.about import NOTICE, VERSION
from cxrvlm.infer.dicom_seg import film_dataset, require

SCHEME = "99CXRVLM"  # a private coding scheme designator ("99" prefix: DICOM PS3.16 8.2)
SERIES_NUMBER = 991


def _concept(hd: Any, label: str, suffix: str = "") -> Any:
    code = re.sub(r"[^A-Z0-9]+", "-", label.upper()).strip("-")[:14] + suffix
    return hd.sr.CodedConcept(code, SCHEME, f"{label}{' probability' if suffix else ''}")


def write_report(reading: dict[str, Any], source: str | Path, out: str | Path) -> Path | None:
    """Write the reading as a DICOM SR of `source` (the DICOM file it read) to `out`; None, writing nothing, when
    the reading has no TB verdict (not assessable, or classify not asked for)."""
    tb = reading.get("tb")
    if not tb:
        return None
    hd = require()
    codes = importlib.import_module("pydicom.sr.codedict").codes
    film = film_dataset(source)
    unit = hd.sr.CodedConcept("1", "UCUM", "no units")
    measurements = [hd.sr.Measurement(name=_concept(hd, "tuberculosis", "-P"), value=float(tb["probability"]),
                                      unit=unit)]
    measurements += [hd.sr.Measurement(name=_concept(hd, f["label"], "-P"), value=float(f["probability"]), unit=unit)
                     for f in reading.get("findings", [])]
    verdict = reading.get("verdict") or {}
    called = verdict.get("called", []) if verdict.get("source") == "label head" else []
    evaluations = [hd.sr.QualitativeEvaluation(
        name=_concept(hd, "tuberculosis"),
        value=codes.SCT.Present if tb["label"] == "tuberculosis" else codes.SCT.Absent)]
    evaluations += [hd.sr.QualitativeEvaluation(name=_concept(hd, label), value=codes.SCT.Present)
                    for label in called if label != "tuberculosis"]
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="cxrvlm",
                                                       model_name=str(reading.get("model", "cxrvlm")))
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"cxrvlm reading. {NOTICE}"),
        measurements=measurements, qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(film)])
    report = hd.sr.MeasurementReport(observation_context=context,
                                     procedure_reported=hd.sr.CodedConcept("CXR", SCHEME, "Chest radiograph"),
                                     imaging_measurements=[group])
    sr = hd.sr.Comprehensive3DSR(
        evidence=[film], content=report[0], series_number=SERIES_NUMBER, series_instance_uid=hd.UID(),
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="cxrvlm", is_complete=False, is_final=False,
        is_verified=False, series_description=f"cxrvlm {VERSION} reading (research use, not a diagnosis)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(str(out))
    return out
