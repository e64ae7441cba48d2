"""COVID-19 image data collection: frontal and lateral CXRs with case notes, findings, day offsets, lung masks/boxes.

Expected layout::

    root/
      metadata.csv      image_id,patientid,offset,sex,age,finding,view,date,location,clinical_notes,license,doi,
                        url,has_lung_mask,geographic_extent_mean,opacity_mean,width,height
                        (required: image_id, patientid, offset, finding, view)
      images/<image_id>
      masks/<stem>.png  optional; binary lung mask (255 = lung, both lungs), same size as the image
      lung_boxes.json   optional; COCO, categories "Right Lung" / "Left Lung", bbox [x, y, w, h] in pixels

Studies: the rows of one patient at one ``offset`` (days since symptom onset or admission) are one study; its views
are frontal first (PA + L pairs become multi-view studies). A patient's dated studies are linked in time order:
``prior`` is the immediately earlier study and ``prior_interval_days`` the offset difference. Rows with an empty
offset cannot be placed in time: they form one undated study when they hold at most one frontal view (a PA + L
pair), otherwise each image is its own undated study; undated studies have no prior.

The collection lists some images under two patient ids (the same case entered twice). The first row of an image
wins, later rows of it are skipped, and the second patient id is merged into the first so patient-level splits
cannot separate the copies.

Labels from ``finding`` (comma-joined): each term is a label under its own name (``COVID-19``, ``Pneumocystis``,
``Streptococcus``, ``ARDS``; unknown terms are kept as written) plus its parents in the collection's hierarchy
(``Viral/Bacterial/Fungal Pneumonia``, ``Pneumonia``). ``No Finding`` is 1 for "No Finding" and 0 otherwise. When
every term names a specific diagnosis, the diagnosis labels it does not imply are 0 (a Streptococcus case is
COVID-19 negative); an unspecified "Pneumonia" or "ARDS" leaves them unknown.

Per view: ``masks["lungs"]`` when the mask file exists (has_lung_mask not 0), boxes "right lung" / "left lung"
(the patient's right, on the image's left) normalised by the stored image size; boxes drawn on an image of another
size than the stored one are skipped (they cannot be placed). Per study: ``report`` = the case notes
(``kind="case_notes"``), ``scores`` = geographic_extent (0-8) and opacity (0-6) of the first view that has them,
``licence`` = the rows' licences ("see url" where none is given), per-image licences in ``meta["licences"]``.

Citation:
    Cohen JP, Morrison P, Dao L, Roth K, Duong TQ, Ghassemi M. COVID-19 image data collection: prospective
    predictions are the future. MELBA 2020 (arXiv:2006.11988).
    Cohen JP, Dao L, Roth K, et al. Predicting COVID-19 pneumonia severity on chest X-ray with deep learning.
    Cureus 2020;12(7):e9448. (severity scores)   Lung masks: V7 Labs. Lung boxes: General Blockchain.
Licence: per image (``license`` column; many CC BY-NC-SA, CC BY, CC BY-NC-ND); follow each image's licence and url.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrvlm.records import Box, Report, Study, View, normalise_view_position
from cxrvlm.sources._common import LUNGS, frontal_first, image_size, link_priors, parse_float, read_csv
from cxrvlm.sources.base import Source, register_source

_SCORES = (("geographic_extent_mean", "geographic_extent", 8.0), ("opacity_mean", "opacity", 6.0))  # column, name, max
_DIAGNOSES = ("COVID-19", "Viral Pneumonia", "Bacterial Pneumonia", "Fungal Pneumonia", "Pneumocystis", "Pneumonia")
_VIRAL = ("Viral Pneumonia", "Pneumonia")
_BACTERIAL = ("Bacterial Pneumonia", "Pneumonia")
_FUNGAL = ("Fungal Pneumonia", "Pneumonia")
# term (lower case) -> (labels it implies, names a specific diagnosis). From the collection's finding hierarchy.
_FINDINGS: dict[str, tuple[tuple[str, ...], bool]] = {
    "no finding": (("No Finding",), True),
    "covid-19": (("COVID-19",) + _VIRAL, True),
    "sars": (("SARS",) + _VIRAL, True),
    "mers-cov": (("MERS-CoV",) + _VIRAL, True),
    "influenza": (("Influenza",) + _VIRAL, True),
    "varicella": (("Varicella",) + _VIRAL, True),
    "herpes": (("Herpes",) + _VIRAL, True),
    "pneumocystis": (("Pneumocystis",) + _FUNGAL, True),
    "aspergillosis": (("Aspergillosis",) + _FUNGAL, True),
    "streptococcus": (("Streptococcus",) + _BACTERIAL, True),
    "staphylococcus": (("Staphylococcus",) + _BACTERIAL, True),
    "klebsiella": (("Klebsiella",) + _BACTERIAL, True),
    "legionella": (("Legionella",) + _BACTERIAL, True),
    "e.coli": (("E.Coli",) + _BACTERIAL, True),
    "mycoplasma": (("Mycoplasma",) + _BACTERIAL, True),
    "chlamydophila": (("Chlamydophila",) + _BACTERIAL, True),
    "nocardia": (("Nocardia",) + _BACTERIAL, True),
    "bacterial": (_BACTERIAL, True),
    "lipoid": (("Lipoid", "Pneumonia"), True),
    "pneumonia": (("Pneumonia",), False),  # cause not given
    "ards": (("ARDS",), False),  # a syndrome with or without pneumonia
}


def finding_labels(finding: str) -> dict[str, float]:
    """The ``finding`` cell ("COVID-19, ARDS") -> labels (1 positive, 0 negative; unknown labels absent)."""
    terms = [t.strip() for t in finding.split(",") if t.strip()]
    labels: dict[str, float] = {}
    specific = bool(terms)
    for term in terms:
        implied, is_specific = _FINDINGS.get(term.lower(), ((term,), False))
        specific = specific and is_specific
        labels.update({name: 1.0 for name in implied})
    if not terms:
        return labels
    labels.setdefault("No Finding", 0.0)
    if specific:
        for name in _DIAGNOSES:
            labels.setdefault(name, 0.0)
    return labels


@dataclass
class _Row:
    line: int
    patient: str
    offset: float  # NaN when undated
    view: View
    cells: dict[str, str]


def _read_coco_boxes(path: Path) -> dict[str, tuple[int, int, list[tuple[str, list[float]]]]]:
    """COCO file -> file name -> (width, height, [(category name, [x, y, w, h])]); ValueError when malformed."""
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        names = {c["id"]: str(c["name"]) for c in coco["categories"]}
        images = {im["id"]: (str(im["file_name"]), int(im["width"]), int(im["height"])) for im in coco["images"]}
        out: dict[str, tuple[int, int, list[tuple[str, list[float]]]]] = {}
        for fname, w, h in images.values():
            out[fname] = (w, h, [])
        for ann in sorted(coco["annotations"], key=lambda a: (a["image_id"], a["category_id"])):
            fname = images[ann["image_id"]][0]
            out[fname][2].append((names[ann["category_id"]], [float(v) for v in ann["bbox"]]))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable COCO annotation file ({type(e).__name__}: {e})") from None
    return out


@register_source
class CovidSource(Source):
    name = "covid"
    licence = "per image (license column of metadata.csv; many CC BY-NC-SA)"
    citation = (
        "Cohen et al., COVID-19 image data collection: prospective predictions are the future, MELBA 2020 "
        "(arXiv:2006.11988); severity: Cohen et al., Cureus 2020;12(7):e9448; lung masks: V7 Labs; "
        "lung boxes: General Blockchain"
    )

    def _studies(self) -> Iterator[Study]:
        rows = self._read_rows()
        by_patient: dict[str, list[_Row]] = {}
        for r in rows:
            by_patient.setdefault(r.patient, []).append(r)
        for patient, patient_rows in by_patient.items():
            timeline: list[tuple[float, Study]] = []
            studies = []
            for key, offset, group in self._sessions(patient_rows):
                study = self._study(patient, key, offset, group)
                studies.append(study)
                if not math.isnan(offset):
                    timeline.append((offset, study))
            link_priors(timeline)
            yield from studies

    def _read_rows(self) -> list[_Row]:
        """Every usable row of metadata.csv; duplicates of an image are skipped and their patient ids merged."""
        csv_path = self.require("metadata.csv")
        images = self.require("images")
        boxes = self._boxes()
        raw = list(read_csv(csv_path, required=("image_id", "patientid", "offset", "finding", "view")))
        alias = self._patient_aliases(raw)
        first_line: dict[str, int] = {}
        rows: list[_Row] = []
        for line, cells in raw:
            image_id = cells["image_id"]
            item = f"metadata.csv line {line} ({image_id or 'no image_id'})"
            if image_id in first_line:
                self.skip(item, f"image already listed at line {first_line[image_id]}")
                continue
            try:
                if not image_id or not cells["patientid"]:
                    raise ValueError("empty image_id or patientid")
                offset = parse_float(cells["offset"], "offset")
                view = self._view(cells, images, boxes)
            except ValueError as e:
                self.skip(item, str(e))
                continue
            first_line[image_id] = line
            rows.append(_Row(line, f"covid:{alias.get(cells['patientid'], cells['patientid'])}", offset, view, cells))
        for name in sorted(set(boxes) - set(first_line)):
            self.skip(f"lung_boxes.json boxes of {name}", "no usable row of this image in metadata.csv")
        return rows

    @staticmethod
    def _patient_aliases(raw: list[tuple[int, dict[str, str]]]) -> dict[str, str]:
        """Patient id -> the id of the patient who first listed one of its images (identity when none)."""
        owner: dict[str, str] = {}
        alias: dict[str, str] = {}
        for _, cells in raw:
            pid, image_id = cells["patientid"], cells["image_id"]
            first = owner.setdefault(image_id, pid)
            if first != pid:
                alias.setdefault(pid, alias.get(first, first))
        return alias

    def _boxes(self) -> dict[str, tuple[int, int, list[tuple[str, list[float]]]]]:
        path = self.root / "lung_boxes.json"
        if not path.is_file():
            return {}
        try:
            return _read_coco_boxes(path)
        except ValueError as e:
            self.skip("lung_boxes.json", str(e))
            return {}

    def _view(self, cells: dict[str, str], images: Path, boxes: dict[str, Any]) -> View:
        """One row -> its View with size, view position, lung mask and lung boxes; ValueError when unusable."""
        image_id = cells["image_id"]
        path = images / image_id
        if not path.is_file():
            raise ValueError(f"image {image_id} not found in {images}")
        try:
            size = (int(cells["height"]), int(cells["width"]))
        except (KeyError, ValueError):
            size = image_size(path)
        view = View(image_id=image_id, path=str(path), view_position=normalise_view_position(cells["view"]),
                    size=size)
        mask = self.root / "masks" / f"{Path(image_id).stem}.png"
        if cells.get("has_lung_mask", "") != "0" and mask.is_file():
            view.masks[LUNGS] = str(mask)
        elif cells.get("has_lung_mask") == "1":
            self.skip(f"masks/{mask.name}", "has_lung_mask is 1 but the mask file is missing")
        if image_id in boxes:
            view.boxes = self._view_boxes(image_id, size, *boxes[image_id])
        return view

    def _view_boxes(self, image_id: str, size: tuple[int, int], width: int, height: int,
                    anns: list[tuple[str, list[float]]]) -> list[Box]:
        """COCO [x, y, w, h] pixel boxes -> normalised Boxes labelled "right lung" / "left lung"."""
        if (height, width) != size:
            self.skip(f"lung_boxes.json boxes of {image_id}",
                      f"drawn on a {width}x{height} image but the stored image is {size[1]}x{size[0]}")
            return []
        out = []
        for name, bbox in anns:
            try:
                x, y, w, h = bbox
                out.append(Box.from_pixels(name.lower(), x, y, x + w, y + h, width, height))
            except ValueError as e:
                self.skip(f"lung_boxes.json {name} box of {image_id}", str(e))
        return out

    @staticmethod
    def _sessions(rows: list[_Row]) -> list[tuple[str, float, list[_Row]]]:
        """A patient's rows -> (study key, offset or NaN, rows), dated sessions in time order, then undated ones."""
        dated: dict[float, list[_Row]] = {}
        undated: list[_Row] = []
        for r in rows:
            (undated if math.isnan(r.offset) else dated.setdefault(r.offset, [])).append(r)
        sessions = [(f"day{off:g}", off, dated[off]) for off in sorted(dated)]
        if undated and sum(r.view.view_position != "LATERAL" for r in undated) <= 1:
            sessions.append(("undated", math.nan, undated))
        else:
            sessions += [(Path(r.view.image_id).stem, math.nan, [r]) for r in undated]
        return sessions

    def _study(self, patient: str, key: str, offset: float, rows: list[_Row]) -> Study:
        """The rows of one session -> one Study (frontal views first)."""
        views = frontal_first([r.view for r in rows])
        by_id = {r.view.image_id: r.cells for r in rows}
        first = by_id[views[0].image_id]
        labels: dict[str, float] = {}
        for r in rows:
            for name, value in finding_labels(r.cells["finding"]).items():
                labels[name] = max(labels.get(name, value), value)  # a positive on any image wins
        notes = list(dict.fromkeys(c.get("clinical_notes", "") for c in by_id.values() if c.get("clinical_notes")))
        licences = {i: c.get("license", "") for i, c in by_id.items()}
        distinct = sorted({v for v in licences.values() if v})
        return Study(
            study_id=f"{patient}:{key}", patient_id=patient, source=self.name,
            licence="; ".join(distinct) if distinct else "see url", views=views, labels=labels,
            report=Report(findings=" ".join(notes), kind="case_notes") if notes else None,
            scores=self._scores([by_id[v.image_id] for v in views]), meta=self._meta(first, offset, licences, by_id),
        )

    def _scores(self, cells_in_view_order: list[dict[str, str]]) -> dict[str, float]:
        """Severity scores of the first view that has any; a value off its scale is reported and left out."""
        for cells in cells_in_view_order:
            scores = {}
            for column, name, top in _SCORES:
                try:
                    value = parse_float(cells.get(column), column)
                    if not math.isnan(value) and not 0.0 <= value <= top:
                        raise ValueError(f"{column}: {value} is outside 0-{top:g}")
                except ValueError as e:
                    self.skip(f"metadata.csv score of {cells['image_id']}", str(e))
                    continue
                if not math.isnan(value):
                    scores[name] = value
            if scores:
                return scores
        return {}

    @staticmethod
    def _meta(first: dict[str, str], offset: float, licences: dict[str, str], by_id: dict[str, dict[str, str]]
              ) -> dict[str, Any]:
        try:
            age = parse_float(first.get("age"), "age")
        except ValueError:  # free text such as "50s": kept as written
            age = first.get("age")
        return {
            "sex": first.get("sex") or None, "age": None if age != age else age,
            "offset_days": None if math.isnan(offset) else offset,
            "date": first.get("date") or None, "location": first.get("location") or None,
            "finding": first["finding"], "doi": first.get("doi") or None, "url": first.get("url") or None,
            "licences": licences, "findings_per_image": {i: c["finding"] for i, c in by_id.items()},
        }
