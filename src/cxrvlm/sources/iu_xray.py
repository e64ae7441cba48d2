"""IU X-ray (Indiana University chest X-ray collection, Open-i): radiology reports with their frontal and lateral
images.

Expected layout (`root` holds the two NLM downloads, unpacked):

    ecgen-radiology/1.xml, 2.xml, ...      NLMCXR_reports.tgz: one report a file
    images/CXR1_1_IM-0001-3001.png, ...    NLMCXR_png.tgz: named by the XML's <parentImage id="..."> (subfolders
                                           of images/ are searched too)

From each XML: `<AbstractText Label="FINDINGS">` and `Label="IMPRESSION"` (the report), `INDICATION` and
`COMPARISON` (meta), `<MeSH><major>` terms (meta `mesh_major`, and labels), `<parentImage id=...>` (the views).

Records: one study per report, study `iu_xray:<n>` for `<n>.xml`, patient `openi:<n>`: the collection has no
patient ids, so a report stands for one patient, and the `openi` adapter (the same reports, text only) uses the
same id so both land on one side of a split. Views keep the XML's order; the XML does not say which image is
frontal and which lateral, so `view_position` stays None rather than guessed. Labels come from the MeSH major
terms exactly as the `openi` adapter reads them (`_common.mesh_labels`): "normal" -> No Finding 1; a mapped term
(e.g. "Cardiomegaly/mild", "Pulmonary Atelectasis/base/left", "Opacity/lung") -> that label 1 and No Finding 0.
Other labels stay unknown (absent). `XXXX` in the text marks
de-identified words and is kept as is.

Licence: CC BY-NC-ND 4.0 (as the XML's licenseURL states).
Citation: Demner-Fushman D, Kohli MD, Rosenman MB, et al. Preparing a collection of radiology examinations for
distribution and retrieval. J Am Med Inform Assoc. 2016;23(2):304-310.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import Report, Study, View
from cxrvlm.sources._common import mesh_labels
from cxrvlm.sources.base import Source, register_source

def parse_report_xml(path: Path) -> dict[str, Any]:
    """One ecgen-radiology XML -> {"sections": {LABEL: text}, "mesh_major": [...], "images": [ids]}."""
    root = ET.parse(path).getroot()
    sections = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().upper()
        if label:
            sections[label] = " ".join("".join(node.itertext()).split())
    return {
        "sections": sections,
        "mesh_major": [" ".join((n.text or "").split()) for n in root.iter("major") if (n.text or "").strip()],
        "images": [n.get("id", "").strip() for n in root.iter("parentImage") if n.get("id", "").strip()],
    }


def _index_images(folder: Path) -> dict[str, Path]:
    """Image stem -> path for every PNG under `folder` (recursively)."""
    index: dict[str, Path] = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(".png"):
                index.setdefault(name[:-4], Path(dirpath) / name)
    return index


def _report_number(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)


@register_source
class IUXray(Source):
    name = "iu_xray"
    licence = "CC BY-NC-ND 4.0"
    citation = "Demner-Fushman D, et al. Preparing a collection of radiology examinations for distribution and " \
               "retrieval. J Am Med Inform Assoc. 2016;23(2):304-310."

    def _studies(self) -> Iterator[Study]:
        reports = self.require("ecgen-radiology")
        images = _index_images(self.require("images"))
        for path in sorted(reports.glob("*.xml"), key=_report_number):
            study = self._study(path, images)
            if study is not None:
                yield study

    def _study(self, path: Path, images: dict[str, Path]) -> Study | None:
        item = str(path.relative_to(self.root))
        try:
            parsed = parse_report_xml(path)
        except (ET.ParseError, OSError) as e:
            self.skip(item, f"unreadable report XML: {e}")
            return None
        views = []
        for image_id in parsed["images"]:
            if image_id in images:
                views.append(View(image_id=image_id, path=str(images[image_id])))
            else:
                self.skip(f"{item}: image {image_id}", "image file not found under images/ (study kept)")
        if not views:
            self.skip(item, "none of the report's images was found" if parsed["images"] else "report lists no image")
            return None
        sections = parsed["sections"]
        report = Report(findings=sections.get("FINDINGS", ""), impression=sections.get("IMPRESSION", ""))
        meta = {k.lower(): sections[k] for k in ("INDICATION", "COMPARISON") if sections.get(k)}
        meta["mesh_major"] = parsed["mesh_major"]
        return Study(
            study_id=f"{self.name}:{path.stem}", patient_id=f"openi:{path.stem}", source=self.name,
            licence=self.licence, views=views, labels=mesh_labels(parsed["mesh_major"]),
            report=report if report else None, meta=meta,
        )
