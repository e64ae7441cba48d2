"""Hannover Medical School COVID-19 image repository: frontal films of COVID-19 patients, many in intensive care.

Expected layout::

    root/
      metadata.csv      patient_id,image_id,file,view,width,height,sex,modality,admission_offset,
                        icu_admission_offset,icu_release_offset,death_offset, <lab>_offset,<lab>_val ...,
                        covid19_case   (required: patient_id, image_id, file, view, admission_offset)
      images/<image_id>.jpg   8-bit JPEG, contrast-enhanced (CLAHE) by the publisher

Every ``*_offset`` is in days relative to the film (``admission_offset`` -5: admitted five days before the film).

Records: one study per film (``hannover:<patient_id>:<image_id>``), patient ``hannover:<patient_id>`` so a
patient-level split keeps a patient's films together; one view, PA or AP from ``view``, its size from
width/height. A patient's films are placed in time by their day since admission (``-admission_offset``) and linked
in that order: ``prior`` is the immediately earlier film, ``prior_interval_days`` the difference in days; films of one
day are not linked to each other, and a film without ``admission_offset`` has no place in time and no prior.

Labels: every patient had COVID-19 (``covid19_case``; 1 where the column is absent), so ``COVID-19`` = 1 with its
parents in the project's label hierarchy (``tasks._text.PARENT``): ``Viral Pneumonia`` = 1 and ``Pneumonia`` = 1.
A case with ``covid19_case`` 0 gets ``COVID-19`` = 0 and no pneumonia labels. ``Tuberculosis`` is NaN (unknown):
nobody tested these patients for it, and a NaN is a label the multi-label loss masks, where 0 would claim a negative
result. Other diagnoses (bacterial superinfection is common in intensive care) are left unknown (absent), and so is
``No Finding``: nobody read these films, and a COVID-19 patient's film may be clear.

meta: ``sex``, ``modality`` (CR/DX), ``day`` (days since admission), ``admission_offset``,
``icu_admission_offset``, ``icu_release_offset``, ``death_offset`` (NaN-free: None where empty), ``labs`` (name ->
{"value", "offset"} for the laboratory values given), ``contrast_enhanced`` = "CLAHE" (the publisher's; the other
sources are not, a difference a model can learn: report per source).

Bad rows (no patient or image id, a missing file, an offset or lab value that is not a number, an image listed twice)
are skipped with the line of metadata.csv.

Citation:
    Winther HB, Laser H, Gerbel S, et al. COVID-19 image repository. Hannover Medical School, Institute for
    Diagnostic and Interventional Radiology; figshare 2020, doi:10.6084/m9.figshare.12275009.
Licence: CC BY 3.0 (attribution: Hannover Medical School, Institute for Diagnostic and Interventional Radiology).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import Study, View, normalise_view_position
from cxrvlm.sources._common import image_size, link_priors, parse_float, parse_label, read_csv
from cxrvlm.sources.base import Source, register_source

_REQUIRED = ("patient_id", "image_id", "file", "view", "admission_offset")
_COURSE = ("admission_offset", "icu_admission_offset", "icu_release_offset", "death_offset")
_LABS = ("crp", "d_dimer", "factor_xii", "ldh", "lymphocytes", "neutrophils", "pco2", "po2")
_COVID = ("COVID-19", "Viral Pneumonia", "Pneumonia")


def covid_labels(cell: str | None) -> dict[str, float]:
    """The covid19_case cell (None: column absent) -> labels; Tuberculosis unknown either way."""
    case = 1.0 if cell is None else parse_label(cell, "covid19_case")
    if math.isnan(case):
        case = 1.0  # the repository holds COVID-19 patients only
    labels = dict.fromkeys(_COVID, 1.0) if case == 1.0 else {"COVID-19": 0.0}
    labels["Tuberculosis"] = math.nan
    return labels


def _number(cells: dict[str, str], column: str) -> float | None:
    value = parse_float(cells.get(column), column)
    return None if math.isnan(value) else value


def _labs(cells: dict[str, str]) -> dict[str, dict[str, float | None]]:
    """{"crp": {"value": 29.0, "offset": 0.0}, ...} for the laboratory values the row gives."""
    out = {}
    for lab in _LABS:
        value = _number(cells, f"{lab}_val")
        if value is not None:
            out[lab] = {"value": value, "offset": _number(cells, f"{lab}_offset")}
    return out


@register_source
class HannoverSource(Source):
    name = "hannover"
    licence = "CC BY 3.0 (Hannover Medical School, Institute for Diagnostic and Interventional Radiology)"
    citation = ("Winther HB, Laser H, Gerbel S, et al. COVID-19 image repository. Hannover Medical School, figshare "
                "2020, doi:10.6084/m9.figshare.12275009")

    def _studies(self) -> Iterator[Study]:
        by_patient: dict[str, list[Study]] = {}
        for study in self._read_rows():
            by_patient.setdefault(study.patient_id, []).append(study)
        for studies in by_patient.values():
            link_priors([(s.meta["day"], s) for s in studies if s.meta["day"] is not None])
            yield from studies

    def _read_rows(self) -> Iterator[Study]:
        """One study per usable row of metadata.csv, in file order; bad rows skipped with their line."""
        seen: dict[str, int] = {}
        for line, cells in read_csv(self.require("metadata.csv"), required=_REQUIRED):
            item = f"metadata.csv line {line} ({cells['image_id'] or 'no image_id'})"
            if cells["image_id"] in seen:
                self.skip(item, f"image already listed at line {seen[cells['image_id']]}")
                continue
            try:
                study = self._study(cells)
            except ValueError as e:
                self.skip(item, str(e))
                continue
            seen[cells["image_id"]] = line
            yield study

    def _study(self, cells: dict[str, str]) -> Study:
        """One row -> one single-view study; ValueError saying why the row is unusable."""
        patient, image_id = cells["patient_id"], cells["image_id"]
        if not patient or not image_id:
            raise ValueError("empty patient_id or image_id")
        view = self._view(cells)
        meta = self._meta(cells)
        return Study(study_id=f"{self.name}:{patient}:{image_id}", patient_id=f"{self.name}:{patient}",
                     source=self.name, licence=self.licence, views=[view],
                     labels=covid_labels(cells.get("covid19_case")), meta=meta)

    def _view(self, cells: dict[str, str]) -> View:
        path = self.root / cells["file"]
        if not cells["file"] or not path.is_file():
            raise ValueError(f"image {cells['file'] or '(no file)'} not found in {self.root}")
        try:
            size = (int(cells["height"]), int(cells["width"]))
        except (KeyError, ValueError):
            size = image_size(path)
        position = normalise_view_position(cells["view"])
        if position not in ("PA", "AP"):
            raise ValueError(f"view {cells['view']!r} is not AP or PA")
        return View(image_id=cells["image_id"], path=str(path), view_position=position, size=size)

    @staticmethod
    def _meta(cells: dict[str, str]) -> dict[str, Any]:
        course = {c: _number(cells, c) for c in _COURSE}
        admission = course["admission_offset"]
        return {"sex": cells.get("sex", "").upper()[:1] or None, "modality": cells.get("modality") or None,
                "day": None if admission is None else 0.0 - admission, **course, "labs": _labs(cells),
                "contrast_enhanced": "CLAHE", "file": Path(cells["file"]).as_posix()}
