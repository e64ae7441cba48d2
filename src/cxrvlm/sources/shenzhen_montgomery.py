"""Shenzhen and Montgomery County chest X-ray sets as the U.S. National Library of Medicine distributes them.

Expected layout (`root` is one set's folder, or a folder that holds both sets' folders):

    MontgomerySet/
      CXR_png/MCUCXR_0001_0.png             name ends in _0 (normal) or _1 (tuberculosis)
      ClinicalReadings/MCUCXR_0001_0.txt    "Patient's Sex: M", "Patient's Age: 047Y", then the reading
      ManualMask/leftMask/MCUCXR_0001_0.png
      ManualMask/rightMask/MCUCXR_0001_0.png
    ChinaSet_AllFiles/
      CXR_png/CHNCXR_0001_0.png
      ClinicalReadings/CHNCXR_0001_0.txt    "male 45yrs", then the reading, e.g. "normal"
      mask/CHNCXR_0001_0_mask.png           optional: both lungs in one mask (the Shenzhen lung-mask release)

Records: one study per image with one frontal view (PA for Montgomery, whose images the set's description calls
posteroanterior; None for Shenzhen, described only as frontal); patient ids `shenzhen:CHNCXR_0001` and
`montgomery:MCUCXR_0001` (`_common.nlm_patient_id`, as every adapter holding these patients names them);
labels `Tuberculosis` and `No Finding`; the clinical reading as a `case_notes` report; meta `sex` ("M"/"F"),
`age` (years), `set`.

Masks: Montgomery's left and right lung masks become "left lung" and "right lung" (the patient's sides, as
radiologists name them) with their bounding boxes, and their union "lungs" (COCO RLE). Which mask is which side
is decided from where the mask lies, not from the folder name: the patient's left lung is shown on the image's
right. Shenzhen's single mask becomes "lungs".

Licence: released by the U.S. National Library of Medicine for research use; cite the paper below.
Citation: Jaeger S, Candemir S, Antani S, Wang YX, Lu PX, Thoma G. Two public chest X-ray datasets for
computer-aided screening of pulmonary diseases. Quant Imaging Med Surg. 2014;4(6):475-477.
Montgomery masks: Candemir S, et al. Lung segmentation in chest radiographs using anatomical atlases with
nonrigid registration. IEEE Trans Med Imaging. 2014;33(2):577-590.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from cxrvlm.records import Box, Report, Study, View
from cxrvlm.sources._common import LEFT_LUNG, LUNGS, RIGHT_LUNG, image_size, nlm_patient_id, nlm_tb_label
from cxrvlm.sources.base import Source, register_source
from cxrvlm.tokens.rle import rle_encode

_SEX = {"m": "M", "male": "M", "f": "F", "female": "F"}


def parse_clinical_reading(text: str) -> tuple[str | None, int | None, str]:
    """A ClinicalReadings file -> (sex "M"/"F" or None, age in years or None, the reading text)."""
    sex: str | None = None
    age: int | None = None
    notes: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"patient'?s\s+sex\s*:\s*(\w+)", line, re.I)
        if m:
            sex = _SEX.get(m.group(1).lower(), sex)
            continue
        m = re.match(r"patient'?s\s+age\s*:\s*0*(\d+)", line, re.I)
        if m:
            age = int(m.group(1))
            continue
        # Shenzhen: "male 35yrs" (sometimes followed by the reading on the same line).
        m = re.match(r"(male|female)(?![a-z])[\s,]*(?:0*(\d+)\s*(yrs?|years?|y|months?)?\b)?[\s,.:;-]*", line, re.I)
        if m and sex is None:
            sex = _SEX[m.group(1).lower()]
            if m.group(2):
                months = (m.group(3) or "").lower().startswith("month")
                age = int(m.group(2)) // 12 if months else int(m.group(2))
            line = line[m.end():].strip()
            if not line:
                continue
        notes.append(line)
    return sex, age, " ".join(notes)


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def _mask_box(label: str, mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return Box.from_pixels(label, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, w, h)


@register_source
class ShenzhenMontgomery(Source):
    name = "shenzhen_montgomery"
    licence = "NLM research use (Shenzhen and Montgomery County sets)"
    citation = "Jaeger S, et al. Two public chest X-ray datasets for computer-aided screening of pulmonary " \
               "diseases. Quant Imaging Med Surg. 2014;4(6):475-477."

    def _set_folders(self) -> list[Path]:
        """Every folder under root (root itself or its children) that holds a `CXR_png/` folder."""
        candidates = [self.root] + sorted(p for p in self.root.iterdir() if p.is_dir())
        found = [p for p in candidates if (p / "CXR_png").is_dir()]
        if not found:
            raise ValueError(f"source {self.name!r}: no CXR_png/ folder in {self.root} or its subfolders "
                             f"(expected layout: see cxrvlm.sources.{self.name})")
        return found

    def _studies(self) -> Iterator[Study]:
        for folder in self._set_folders():
            for path in sorted((folder / "CXR_png").glob("*.png")):
                study = self._study(folder, path)
                if study is not None:
                    yield study

    def _study(self, folder: Path, path: Path) -> Study | None:
        item = str(path.relative_to(self.root))
        patient, tb = nlm_patient_id(path.stem), nlm_tb_label(path.stem)
        if patient is None or math.isnan(tb):
            self.skip(item, "file name is not CHNCXR_NNNN_T.png or MCUCXR_NNNN_T.png with T = 0 or 1")
            return None
        set_name = patient.split(":")[0]
        try:
            size = image_size(path)
        except ValueError as e:
            self.skip(item, str(e))
            return None
        view = View(image_id=path.stem, path=str(path), view_position="PA" if set_name == "montgomery" else None,
                    size=size)
        study = Study(
            study_id=f"{self.name}:{path.stem}", patient_id=patient, source=self.name,
            licence=self.licence, views=[view], labels={"Tuberculosis": tb, "No Finding": 1.0 - tb},
            meta={"set": set_name},
        )
        self._add_reading(folder / "ClinicalReadings" / f"{path.stem}.txt", study)
        if set_name == "montgomery":
            self._add_lung_masks(folder / "ManualMask", path.name, view)
        else:
            self._add_union_mask(folder, path.stem, view)
        return study

    def _add_reading(self, path: Path, study: Study) -> None:
        if not path.is_file():
            return
        try:
            sex, age, notes = parse_clinical_reading(path.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            self.skip(str(path.relative_to(self.root)), f"unreadable clinical reading: {e}")
            return
        study.meta.update({k: v for k, v in (("sex", sex), ("age", age)) if v is not None})
        if notes:
            study.report = Report(findings=notes, kind="case_notes")

    def _add_lung_masks(self, mask_dir: Path, file_name: str, view: View) -> None:
        """Montgomery: left/right masks, sides checked against their position, plus their union."""
        paths = [mask_dir / "leftMask" / file_name, mask_dir / "rightMask" / file_name]
        if not all(p.is_file() for p in paths):
            return
        item = str(paths[0].relative_to(self.root))
        try:
            masks = [_read_mask(p) for p in paths]
        except (OSError, SyntaxError, ValueError) as e:
            self.skip(item, f"unreadable lung mask: {e}")
            return
        if any(mk.shape != view.size for mk in masks) or not all(mk.any() for mk in masks):
            self.skip(item, f"lung masks are empty or their size {masks[0].shape} is not the image's {view.size}")
            return
        width = view.size[1]
        # The patient's left lung lies on the image's right half (x grows to the right).
        sides = [LEFT_LUNG if np.nonzero(mk)[1].mean() > width / 2 else RIGHT_LUNG for mk in masks]
        if sides[0] == sides[1]:
            self.skip(item, "left and right lung masks lie on the same side of the image")
            return
        for side, path, mk in zip(sides, paths, masks):
            view.masks[side] = str(path)
            view.boxes.append(_mask_box(side, mk))
        view.masks[LUNGS] = rle_encode(masks[0] | masks[1])

    def _add_union_mask(self, folder: Path, stem: str, view: View) -> None:
        """Shenzhen: one mask of both lungs, where the mask release is present."""
        for name in (f"mask/{stem}_mask.png", f"mask/{stem}.png", f"masks/{stem}_mask.png", f"masks/{stem}.png"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                size = image_size(path)
            except ValueError as e:
                self.skip(str(path.relative_to(self.root)), str(e))
                return
            if size != view.size:
                self.skip(str(path.relative_to(self.root)), f"mask size {size} is not the image's {view.size}")
                return
            view.masks[LUNGS] = str(path)
            return
