"""MIMIC-CXR-JPG: 377,110 chest X-rays (JPEG) of 227,827 studies with CheXpert labels, and the MIMIC-CXR reports.

Expected layout (`root` is the MIMIC-CXR-JPG folder; each CSV may be gzipped, as PhysioNet ships them):

    mimic-cxr-2.0.0-metadata.csv[.gz]   dicom_id, subject_id, study_id, ViewPosition, Rows, Columns, StudyDate
                                        (YYYYMMDD, shifted), StudyTime, ...
    mimic-cxr-2.0.0-chexpert.csv[.gz]   optional: subject_id, study_id, 14 CheXpert columns (1.0 / 0.0 / -1.0 / blank)
    mimic-cxr-2.0.0-split.csv[.gz]      optional: dicom_id, study_id, subject_id, split (train / validate / test)
    files/p10/p10000032/s50414267/<dicom_id>.jpg
    files/p10/p10000032/s50414267.txt   optional: the report (mimic-cxr-reports.zip unpacked into root, or into
                                        root/mimic-cxr-reports/)

Records: one study per study_id with all its images as views (PA / AP / LATERAL from ViewPosition, size from
Rows/Columns); patient `mimic_cxr:<subject_id>`. Studies of a subject are yielded in time order (StudyDate,
StudyTime) and each links the subject's previous study as its prior, with the interval in days (fractional, from
date and time; studies at the same time are not linked). Frontal views come first. Labels: the 14
CheXpert columns; 1.0 -> 1, 0.0 -> 0, -1.0 (uncertain) and blank (not mentioned) -> NaN (unknown), as
torchxrayvision does; the uncertain ones are listed in meta `uncertain`. The report's FINDINGS: and IMPRESSION:
sections become the report; where a report has neither, the study has no report. meta `split` where the split
file gives it.

Licence: PhysioNet Credentialed Health Data License 1.5.0 (credentialed access; data use agreement).
Citation: Johnson AEW, Pollard TJ, Berkowitz SJ, et al. MIMIC-CXR, a de-identified publicly available database of
chest radiographs with free-text reports. Scientific Data 6, 317 (2019); Johnson AEW, et al. MIMIC-CXR-JPG, a
large publicly available database of labeled chest radiographs. arXiv:1901.07042 (2019).
"""
from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from cxrvlm.records import CHEXPERT_14, Report, Study, View, normalise_view_position
from cxrvlm.sources._common import frontal_first, link_priors, parse_label
from cxrvlm.sources.base import Source, register_source

_PREFIX = "mimic-cxr-2.0.0-"
_EPOCH = datetime(1900, 1, 1)
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z &/()-]{1,40}):", re.M)
_IMPRESSION_NAMES = ("IMPRESSION", "CONCLUSION", "FINDINGS AND IMPRESSION")


def report_sections(text: str) -> dict[str, str]:
    """A MIMIC report -> {SECTION NAME: text with whitespace collapsed} for every "NAME:" heading at a line start."""
    matches = list(_HEADER.finditer(text))
    sections: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections[m.group(1).strip()] = " ".join(text[m.end():end].split())
    return sections


def parse_report(text: str) -> Report | None:
    """Report of the FINDINGS and IMPRESSION sections, or None where the text has neither."""
    sections = report_sections(text)
    impression = next((sections[n] for n in _IMPRESSION_NAMES if sections.get(n)), "")
    report = Report(findings=sections.get("FINDINGS", ""), impression=impression)
    return report if report else None


def _read_csv(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row of stripped cells) of a CSV or gzipped CSV; ValueError naming missing columns."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}


def _when(date: str, time: str) -> datetime:
    """StudyDate YYYYMMDD + StudyTime HHMMSS[.ffffff] (missing time -> midnight)."""
    day = datetime.strptime(date.strip(), "%Y%m%d")
    digits = time.strip().split(".")[0].zfill(6) if time.strip() else "000000"
    return day.replace(hour=int(digits[:2]) % 24, minute=int(digits[2:4]) % 60, second=int(digits[4:6]) % 60)


@register_source
class MIMICCXR(Source):
    name = "mimic_cxr"
    licence = "PhysioNet Credentialed Health Data License 1.5.0"
    citation = "Johnson AEW, et al. MIMIC-CXR, a de-identified publicly available database of chest radiographs " \
               "with free-text reports. Scientific Data 6, 317 (2019)."

    def _file(self, stem: str, required: bool = False) -> Path | None:
        for name in (f"{_PREFIX}{stem}.csv", f"{_PREFIX}{stem}.csv.gz"):
            if (self.root / name).is_file():
                return self.root / name
        return self.require(f"{_PREFIX}{stem}.csv[.gz]") if required else None

    def _studies(self) -> Iterator[Study]:
        metadata = self._file("metadata", required=True)
        subjects = self._read_metadata(metadata)
        labels = self._read_chexpert(self._file("chexpert"))
        splits = self._read_splits(self._file("split"))
        for subject in sorted(subjects):
            timeline: list[tuple[float, Study]] = []
            for study_id, images in subjects[subject].items():
                study = self._study(subject, study_id, images, labels, splits)
                if study is not None:
                    # Days since a fixed naive epoch: .timestamp() would apply the local time zone's DST.
                    days = (min(i["when"] for i in images) - _EPOCH).total_seconds() / 86400
                    timeline.append((days, study))
            timeline.sort(key=lambda t: (t[0], t[1].study_id))
            link_priors(timeline)
            yield from (study for _, study in timeline)

    def _read_metadata(self, path: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """subject_id -> study_id -> image rows."""
        subjects: dict[str, dict[str, list[dict[str, Any]]]] = {}
        required = ("dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns", "StudyDate")
        for line, row in _read_csv(path, required):
            try:
                image = {"dicom_id": row["dicom_id"], "view": row["ViewPosition"],
                         "size": (int(float(row["Rows"])), int(float(row["Columns"]))),
                         "when": _when(row["StudyDate"], row.get("StudyTime", ""))}
                subject, study = str(int(row["subject_id"])), str(int(row["study_id"]))
            except ValueError as e:
                self.skip(f"{path.name}:{line}", f"malformed metadata row: {e}")
                continue
            subjects.setdefault(subject, {}).setdefault(study, []).append(image)
        return subjects

    def _read_chexpert(self, path: Path | None) -> dict[str, tuple[dict[str, float], list[str]]]:
        """study_id -> (the 14 labels with NaN where uncertain or blank, the uncertain ones)."""
        out: dict[str, tuple[dict[str, float], list[str]]] = {}
        if path is None:
            return out
        for line, row in _read_csv(path, ("study_id", *CHEXPERT_14)):
            try:
                labels = {name: parse_label(row[name], name) for name in CHEXPERT_14}
                uncertain = [name for name in CHEXPERT_14 if row[name] in ("-1", "-1.0")]
                out[str(int(row["study_id"]))] = (labels, uncertain)
            except ValueError as e:
                self.skip(f"{path.name}:{line}", f"malformed CheXpert row: {e}")
        return out

    def _read_splits(self, path: Path | None) -> dict[str, str]:
        out: dict[str, str] = {}
        if path is None:
            return out
        for _, row in _read_csv(path, ("study_id", "split")):
            out[row["study_id"]] = row["split"]
        return out

    def _study(self, subject: str, study_id: str, images: list[dict[str, Any]],
               labels: dict[str, tuple[dict[str, float], list[str]]], splits: dict[str, str]) -> Study | None:
        folder = self.root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study_id}"
        views = []
        for image in images:
            path = folder / f"{image['dicom_id']}.jpg"
            if not path.is_file():
                self.skip(str(path.relative_to(self.root)), "image file not found")
                continue
            views.append(View(image_id=image["dicom_id"], path=str(path), size=image["size"],
                              view_position=normalise_view_position(image["view"])))
        views = frontal_first(views)
        if not views:
            self.skip(f"s{study_id}", "none of the study's images was found")
            return None
        study_labels, uncertain = labels.get(study_id, ({}, []))
        meta: dict[str, Any] = {"study_date": min(i["when"] for i in images).strftime("%Y-%m-%d")}
        if uncertain:
            meta["uncertain"] = uncertain
        if study_id in splits:
            meta["split"] = splits[study_id]
        return Study(study_id=f"{self.name}:s{study_id}", patient_id=f"{self.name}:{subject}", source=self.name,
                     licence=self.licence, views=views, labels=dict(study_labels),
                     report=self._report(folder.parent / f"s{study_id}.txt"), meta=meta)

    def _report(self, path: Path) -> Report | None:
        candidates = [path, self.root / "mimic-cxr-reports" / path.relative_to(self.root)]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            return None
        try:
            return parse_report(found.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            self.skip(str(found.relative_to(self.root)), f"unreadable report: {e}")
            return None
