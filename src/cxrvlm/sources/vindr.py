"""VinDr-CXR: 18,000 posteroanterior chest X-rays (DICOM) with radiologists' finding boxes and global diagnoses.

Expected layout (`root` is the dataset folder; either the Kaggle competition's or PhysioNet's file names):

    train.csv                              Kaggle: image_id, class_name, class_id, rad_id, x_min, y_min, x_max, y_max
    annotations/annotations_train.csv      PhysioNet: image_id, rad_id, class_name, x_min, y_min, x_max, y_max
    annotations/annotations_test.csv       PhysioNet: the test set (consensus of five radiologists)
    image_labels_train.csv or annotations/image_labels_train.csv   optional: image_id, rad_id, one 0/1 column per
                                           finding and diagnosis (..., COPD, Lung tumor, Pneumonia, Tuberculosis,
                                           Other diseases, No finding); likewise image_labels_test.csv
    train/<image_id>.dicom, test/<image_id>.dicom

"No finding" rows carry no box. Image sizes come from the DICOM header (Rows, Columns), read without pixels.

Records: one study per image with one view (PA unless the header's ViewPosition says otherwise); no patient ids
are released, so each image is its own patient `vindr:<image_id>`. Several radiologists read each training image:
every box of every reader is kept (identical boxes once; meta `readers` counts the readers), and a label is 1 when
any reader marked it, so labels and boxes agree. `No Finding` is 1 only when nothing is positive. Where no
image-label file is present, the box classes seen in the CSV give the local labels (0 when no reader boxed them)
and the global diagnoses stay unknown. Labels use the shared vocabulary: "Nodule/Mass" -> Lung Lesion, "Pulmonary
fibrosis" -> Fibrosis, "Pleural effusion" -> Pleural Effusion, ...; `Fracture` is set from the rib and clavicle
fracture labels. Box labels are lower-case phrases ("cardiomegaly", "nodule or mass", "interstitial lung disease").

Licence: PhysioNet Credentialed Health Data License 1.5.0 (credentialed access).
Citation: Nguyen HQ, Lam K, Le LT, et al. VinDr-CXR: An open dataset of chest X-rays with radiologist's
annotations. Scientific Data 9, 429 (2022).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from cxrvlm.records import Box, Study, View, normalise_view_position
from cxrvlm.sources._common import read_csv
from cxrvlm.sources.base import Source, register_source

# VinDr class name (lower case) -> shared label name.
_LABELS = {
    "aortic enlargement": "Aortic Enlargement", "atelectasis": "Atelectasis", "calcification": "Calcification",
    "cardiomegaly": "Cardiomegaly", "clavicle fracture": "Clavicle Fracture", "consolidation": "Consolidation",
    "edema": "Edema", "emphysema": "Emphysema", "enlarged pa": "Enlarged PA", "ild": "ILD",
    "infiltration": "Infiltration", "lung opacity": "Lung Opacity", "lung cavity": "Lung Cavity",
    "lung cyst": "Lung Cyst", "mediastinal shift": "Mediastinal Shift", "nodule/mass": "Lung Lesion",
    "other lesion": "Other Lesion", "pleural effusion": "Pleural Effusion", "pleural thickening": "Pleural Thickening",
    "pneumothorax": "Pneumothorax", "pulmonary fibrosis": "Fibrosis", "rib fracture": "Rib Fracture",
    "copd": "COPD", "lung tumor": "Lung Tumor", "pneumonia": "Pneumonia", "tuberculosis": "Tuberculosis",
    "other disease": "Other Diseases", "other diseases": "Other Diseases", "no finding": "No Finding",
}
# Box phrases where the lower-cased class name is not a natural phrase.
_PHRASES = {"nodule/mass": "nodule or mass", "ild": "interstitial lung disease", "enlarged pa":
            "enlarged pulmonary artery"}
_SPLITS = {
    "train": (("train.csv", "annotations/annotations_train.csv"),
              ("image_labels_train.csv", "annotations/image_labels_train.csv")),
    "test": (("test.csv", "annotations/annotations_test.csv"),
             ("image_labels_test.csv", "annotations/image_labels_test.csv")),
}


def label_name(class_name: str) -> str:
    """A VinDr class or column name -> the shared label name (unknown names keep their own spelling)."""
    return _LABELS.get(class_name.strip().lower(), class_name.strip())


def box_phrase(class_name: str) -> str:
    key = class_name.strip().lower()
    return _PHRASES.get(key, key)


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with lower-cased column names) of a CSV; ValueError naming missing columns."""
    for line, row in read_csv(path, required=required):
        yield line, {k.strip().lower(): v for k, v in row.items()}


@register_source
class VinDrCXR(Source):
    name = "vindr"
    licence = "PhysioNet Credentialed Health Data License 1.5.0"
    citation = "Nguyen HQ, et al. VinDr-CXR: An open dataset of chest X-rays with radiologist's annotations. " \
               "Scientific Data 9, 429 (2022)."

    def _studies(self) -> Iterator[Study]:
        found = False
        for split, (box_files, label_files) in _SPLITS.items():
            box_csv = next((self.root / f for f in box_files if (self.root / f).is_file()), None)
            if box_csv is None:
                continue
            found = True
            label_csv = next((self.root / f for f in label_files if (self.root / f).is_file()), None)
            yield from self._split(split, box_csv, label_csv)
        if not found:
            raise ValueError(f"source {self.name!r}: neither train.csv nor annotations/annotations_train.csv found "
                             f"in {self.root} (expected layout: see cxrvlm.sources.{self.name})")

    def _split(self, split: str, box_csv: Path, label_csv: Path | None) -> Iterator[Study]:
        rows: dict[str, list[tuple[int, dict[str, str]]]] = {}
        classes: set[str] = set()
        for line, row in _rows(box_csv, ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")):
            if not row.get("image_id"):
                self.skip(f"{box_csv.name}:{line}", "no image_id")
                continue
            rows.setdefault(row["image_id"], []).append((line, row))
            classes.add(row.get("class_name", ""))
        votes = self._read_image_labels(label_csv) if label_csv else {}
        for image_id, image_rows in rows.items():
            study = self._study(split, image_id, image_rows, votes.get(image_id), classes, box_csv.name)
            if study is not None:
                yield study

    def _read_image_labels(self, path: Path) -> dict[str, list[dict[str, float]]]:
        """image_labels_*.csv -> image_id -> one {label: 0/1} per reader."""
        out: dict[str, list[dict[str, float]]] = {}
        for line, row in _rows(path, ("image_id",)):
            labels: dict[str, float] = {}
            for column, value in row.items():
                if column in ("image_id", "rad_id", ""):
                    continue
                try:
                    labels[label_name(column)] = float(value)
                except ValueError:
                    self.skip(f"{path.name}:{line}", f"column {column!r}: {value!r} is not 0 or 1")
                    break
            else:
                out.setdefault(row.get("image_id", ""), []).append(labels)
        return out

    def _study(self, split: str, image_id: str, rows: list, votes: list | None, classes: set[str],
               csv_name: str) -> Study | None:
        path = next((p for p in (self.root / split / f"{image_id}.dicom", self.root / split / f"{image_id}.dcm")
                     if p.is_file()), None)
        if path is None:
            self.skip(f"{split}/{image_id}.dicom", "image file not found")
            return None
        header = self._header(path)
        if header is None:
            return None
        (height, width), view_position = header
        view = View(image_id=image_id, path=str(path), view_position=view_position or "PA", size=(height, width))
        readers = {row.get("rad_id", "") for _, row in rows}
        for line, row in rows:
            box = self._box(row, width, height, f"{csv_name}:{line}")
            if box is not None and all(b != box for b in view.boxes):
                view.boxes.append(box)
        labels = self._labels(rows, votes, classes)
        meta: dict[str, Any] = {"split": split, "readers": len(votes) if votes else len(readers)}
        return Study(study_id=f"{self.name}:{image_id}", patient_id=f"{self.name}:{image_id}", source=self.name,
                     licence=self.licence, views=[view], labels=labels, meta=meta)

    def _header(self, path: Path) -> tuple[tuple[int, int], str | None] | None:
        """(rows, columns) and view position from the DICOM header, pixels not read."""
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns", "ViewPosition"])
            size = (int(ds.Rows), int(ds.Columns))
            if min(size) <= 0:
                raise ValueError(f"Rows x Columns is {size[0]} x {size[1]}")
        except (InvalidDicomError, OSError, AttributeError, TypeError, ValueError) as e:
            self.skip(str(path.relative_to(self.root)), f"DICOM header without usable Rows/Columns: {e}")
            return None
        return size, normalise_view_position(str(ds.get("ViewPosition", "") or ""))

    def _box(self, row: dict[str, str], width: int, height: int, item: str) -> Box | None:
        class_name = row.get("class_name", "")
        if class_name.lower() == "no finding":
            return None
        try:
            x1, y1, x2, y2 = (float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
                raise ValueError("missing coordinates")
            return Box.from_pixels(box_phrase(class_name), x1, y1, x2, y2, width, height)
        except (KeyError, ValueError) as e:
            self.skip(item, f"box of {class_name!r} unusable: {e}")
            return None

    @staticmethod
    def _labels(rows: list, votes: list | None, classes: set[str]) -> dict[str, float]:
        labels: dict[str, float] = {}
        if votes:
            for reader in votes:
                for name, value in reader.items():
                    labels[name] = max(labels.get(name, 0.0), value)
        else:
            labels.update({label_name(c): 0.0 for c in classes if c})
        for _, row in rows:
            if row.get("class_name"):
                labels[label_name(row["class_name"])] = 1.0
        fractures = [labels[k] for k in ("Rib Fracture", "Clavicle Fracture") if k in labels]
        if fractures:
            labels["Fracture"] = max(fractures)
        labels["No Finding"] = 0.0 if any(v == 1.0 for k, v in labels.items() if k != "No Finding") else 1.0
        return labels
