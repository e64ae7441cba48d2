"""NIH ChestX-ray14: 112,120 frontal chest X-rays of 30,805 patients with 14 text-mined finding labels.

Expected layout (`root` is the folder of the NIH download):

    Data_Entry_2017.csv     Image Index, Finding Labels ("A|B" or "No Finding"), Follow-up #, Patient ID,
                            Patient Age ("058Y" or 58), Patient Gender, View Position, OriginalImage[Width, Height],
                            OriginalImagePixelSpacing[x, y]
                            (Data_Entry_2017_v2020.csv is read where Data_Entry_2017.csv is absent)
    BBox_List_2017.csv      optional: Image Index, Finding Label, "Bbox [x", y, w, "h]" and empty columns
    train_val_list.txt, test_list.txt   optional: the official split (meta `split` = train_val / test)
    images/00000001_000.png or images_001/images/00000001_000.png ... images_012/images/...

Records: one study per image, patient `nih:<8-digit Patient ID>`, one view (PA / AP from View Position). Labels:
the 14 findings under the shared names ("Effusion" -> Pleural Effusion, "Pleural_Thickening" -> Pleural
Thickening), 1 when listed and 0 otherwise (the labels were mined from reports, so 0 means "not mentioned"), and
`No Finding`. A patient's follow-ups are successive studies: each links the previous follow-up (by Follow-up #) as
its prior, with the interval unknown (None) since the dataset gives no dates. Boxes from BBox_List_2017.csv are in
the pixels of the released 1024x1024 images and are normalised by 1024, so they stay right for a copy resized
without cropping; box labels are lower-case ("pleural effusion", "infiltration"). meta: `age`, `sex`,
`follow_up`, `original_size` (H, W of the image before NIH resized it).

Licence: released by the NIH Clinical Center without restriction on use; cite the paper below and acknowledge the
NIH Clinical Center.
Citation: Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8: Hospital-scale chest X-ray database and
benchmarks on weakly-supervised classification and localization of common thorax diseases. CVPR 2017, 3462-3471.
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import Box, Study, View, normalise_view_position
from cxrvlm.sources.base import Source, register_source

_FINDINGS = {
    "Atelectasis": "Atelectasis", "Cardiomegaly": "Cardiomegaly", "Effusion": "Pleural Effusion",
    "Infiltration": "Infiltration", "Infiltrate": "Infiltration", "Mass": "Mass", "Nodule": "Nodule",
    "Pneumonia": "Pneumonia", "Pneumothorax": "Pneumothorax", "Consolidation": "Consolidation", "Edema": "Edema",
    "Emphysema": "Emphysema", "Fibrosis": "Fibrosis", "Pleural_Thickening": "Pleural Thickening",
    "Hernia": "Hernia",
}
_BOX_FRAME = 1024  # BBox_List_2017 coordinates are pixels of the released 1024 x 1024 images
_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
            "View Position")


def parse_findings(text: str) -> dict[str, float]:
    """"Cardiomegaly|Effusion" -> all 14 labels + No Finding as 1/0; ValueError naming an unknown finding."""
    names = [t.strip() for t in text.split("|") if t.strip()]
    unknown = [n for n in names if n != "No Finding" and n not in _FINDINGS]
    if unknown or not names:
        raise ValueError(f"unknown finding label(s) {unknown or [text]}")
    labels = dict.fromkeys(_FINDINGS.values(), 0.0)
    for n in names:
        if n != "No Finding":
            labels[_FINDINGS[n]] = 1.0
    labels["No Finding"] = 0.0 if any(v == 1.0 for v in labels.values()) else 1.0
    return labels


def _age(text: str) -> int | None:
    m = re.fullmatch(r"0*(\d+)\s*Y?", text.strip(), re.I)
    # A few entries are in the hundreds (data-entry errors), which no patient age can be.
    return int(m.group(1)) if m and int(m.group(1)) <= 120 else None


def _index_images(root: Path) -> dict[str, Path]:
    """Image file name -> path, over images/ and images_*/images/ (os.scandir: 112k files)."""
    folders = [root / "images"] + sorted(root.glob("images_*/images")) + sorted(root.glob("images_*"))
    index: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.lower().endswith(".png"):
                    index.setdefault(entry.name, Path(entry.path))
    return index


@register_source
class NIHChestXray14(Source):
    name = "nih"
    licence = "NIH Clinical Center, no restriction on use (citation requested)"
    citation = "Wang X, et al. ChestX-ray8: Hospital-scale chest X-ray database and benchmarks on weakly-" \
               "supervised classification and localization of common thorax diseases. CVPR 2017."

    def _studies(self) -> Iterator[Study]:
        entry = self.root / "Data_Entry_2017.csv"
        if not entry.is_file():
            entry = self.require("Data_Entry_2017_v2020.csv")
        images = _index_images(self.root)
        boxes = self._read_boxes()
        splits = self._read_splits()
        for patient, rows in self._patients(entry).items():
            prior: Study | None = None
            for follow_up, line, row in sorted(rows, key=lambda r: (r[0], r[1])):
                study = self._study(row, line, entry.name, follow_up, patient, images, boxes, splits)
                if study is None:
                    continue
                study.prior = prior
                prior = study
                yield study

    def _patients(self, path: Path) -> dict[str, list[tuple[int, int, dict[str, Any]]]]:
        """Data_Entry rows grouped by patient: (follow-up #, line, row)."""
        patients: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in _COLUMNS if c not in header]
            if missing:
                raise ValueError(f"source {self.name!r}: {path} lacks columns {missing}")
            col = {c: header.index(c) for c in _COLUMNS}
            size_col = next((i for i, h in enumerate(header) if h.startswith("OriginalImage[")), None)
            for line, values in enumerate(reader, start=2):
                try:
                    row = {c: values[i].strip() for c, i in col.items()}
                    patient = f"{int(row['Patient ID']):08d}"
                    follow_up = int(row["Follow-up #"])
                    if size_col is not None:
                        row["original_size"] = (int(float(values[size_col + 1])), int(float(values[size_col])))
                except (IndexError, ValueError) as e:
                    self.skip(f"{path.name}:{line}", f"malformed row: {e}")
                    continue
                patients.setdefault(patient, []).append((follow_up, line, row))
        return patients

    def _study(self, row: dict[str, Any], line: int, csv_name: str, follow_up: int, patient: str,
               images: dict[str, Path], boxes: dict[str, list[Box]], splits: dict[str, str]) -> Study | None:
        name = row["Image Index"]
        try:
            labels = parse_findings(row["Finding Labels"])
        except ValueError as e:
            self.skip(f"{csv_name}:{line} ({name})", str(e))
            return None
        path = images.get(name)
        if path is None:
            self.skip(name, "image file not found under images/ or images_*/images/")
            return None
        meta: dict[str, Any] = {"follow_up": follow_up, "age": _age(row["Patient Age"]),
                                "sex": row["Patient Gender"].upper()[:1] or None}
        if "original_size" in row:
            meta["original_size"] = row["original_size"]
        if name in splits:
            meta["split"] = splits[name]
        view = View(image_id=Path(name).stem, path=str(path),
                    view_position=normalise_view_position(row["View Position"]), boxes=list(boxes.get(name, [])))
        return Study(study_id=f"{self.name}:{Path(name).stem}", patient_id=f"{self.name}:{patient}",
                     source=self.name, licence=self.licence, views=[view], labels=labels, meta=meta)

    def _read_boxes(self) -> dict[str, list[Box]]:
        """BBox_List_2017.csv -> image name -> boxes. Read by position: its header is `Bbox [x,y,w,h]`."""
        path = self.root / "BBox_List_2017.csv"
        boxes: dict[str, list[Box]] = {}
        if not path.is_file():
            return boxes
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            next(reader, None)
            for line, values in enumerate(reader, start=2):
                try:
                    name, finding = values[0].strip(), values[1].strip()
                    label = _FINDINGS[finding].lower()
                    x, y, w, h = (float(v) for v in values[2:6])
                    box = Box.from_pixels(label, x, y, x + w, y + h, _BOX_FRAME, _BOX_FRAME)
                except (IndexError, KeyError, ValueError) as e:
                    self.skip(f"{path.name}:{line}", f"unusable box row: {e!r}")
                    continue
                boxes.setdefault(name, []).append(box)
        return boxes

    def _read_splits(self) -> dict[str, str]:
        splits: dict[str, str] = {}
        for file_name, split in (("train_val_list.txt", "train_val"), ("test_list.txt", "test")):
            path = self.root / file_name
            if path.is_file():
                splits.update({n.strip(): split for n in path.read_text().splitlines() if n.strip()})
        return splits
