"""SLAKE: a bilingual medical VQA dataset; its English questions about chest X-rays are kept.

Expected layout (`root` is the `Slake1.0/` folder of the authors' download):

    train.json, validate.json, test.json   lists of {"img_id", "img_name": "xmlab102/source.jpg", "question",
                                           "answer", "answer_type": "OPEN" / "CLOSED", "q_lang": "en" / "zh",
                                           "modality": "X-Ray" / "CT" / "MRI", "location": "Chest" / "Lung" / ...,
                                           "qid", ...}
    imgs/xmlab102/source.jpg
    imgs/xmlab102/detection.json           optional: organ boxes, a list of {"<Organ>": [x, y, w, h]} in pixels

Records: one study per X-ray image with chest-region questions (modality X-Ray; location naming the chest, lungs,
heart, mediastinum or pleura, or blank), with every English question about it as `QA` (closed when answer_type is
CLOSED). SLAKE gives no patient ids, so each image is its own patient `slake:<folder>`. Boxes from detection.json
are labelled with the lower-cased organ name ("left lung", "heart"); the image size for them is read from the
JPEG header. meta `splits` lists the JSON files an image's questions came from (train / validate / test), and
`split` names it when there is one. SLAKE's
semantic masks (mask.png) are not read: their pixel values are organ codes without a key in the release.
Chinese questions and other modalities are left out (counted in the log); records without question or answer,
and missing images, are skipped with the reason. SLAKE's chest X-rays come from NIH ChestX-ray8, so the same
image may also appear in the `nih` source.

Licence: CC BY 4.0 (authors' release).
Citation: Liu B, Zhan LM, Xu L, Ma L, Yang Y, Wu XM. SLAKE: A semantically-labeled knowledge-enhanced dataset for
medical visual question answering. IEEE ISBI 2021, 1650-1654.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import QA, Box, Study, View
from cxrvlm.sources._common import image_size
from cxrvlm.sources.base import Source, register_source

log = logging.getLogger(__name__)

_FILES = (("train.json", "train"), ("validate.json", "validate"), ("test.json", "test"))
_CHEST_WORDS = ("chest", "lung", "heart", "mediastin", "pleura", "thora")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _is_chest_xray(item: dict[str, Any]) -> bool:
    modality = _text(item.get("modality")).lower().replace("-", "").replace(" ", "")
    location = _text(item.get("location")).lower()
    return modality == "xray" and (not location or any(w in location for w in _CHEST_WORDS))


@register_source
class SLAKE(Source):
    name = "slake"
    licence = "CC BY 4.0"
    citation = "Liu B, et al. SLAKE: A semantically-labeled knowledge-enhanced dataset for medical visual " \
               "question answering. IEEE ISBI 2021."

    def _studies(self) -> Iterator[Study]:
        imgs = self.require("imgs")
        groups: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
        present = [(self.root / f, split) for f, split in _FILES if (self.root / f).is_file()]
        if not present:
            raise ValueError(f"source {self.name!r}: none of train.json, validate.json, test.json in {self.root}")
        left_out = 0
        for path, split in present:
            for i, item in enumerate(self._load(path)):
                if not isinstance(item, dict) or not _text(item.get("img_name")):
                    self.skip(f"{path.name}[{i}]", "record without img_name")
                elif _text(item.get("q_lang")).lower() == "en" and _is_chest_xray(item):
                    groups.setdefault(_text(item["img_name"]), []).append((split, i, item))
                else:
                    left_out += 1
        log.info("%s: %d records in other languages or modalities left out", self.name, left_out)
        for img_name, entries in groups.items():
            study = self._study(imgs, img_name, entries)
            if study is not None:
                yield study

    def _load(self, path: Path) -> list[Any]:
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"source {self.name!r}: {path} is not readable JSON: {e}") from None
        if not isinstance(items, list):
            raise ValueError(f"source {self.name!r}: {path} must hold a JSON list of question records")
        return items

    def _study(self, imgs: Path, img_name: str, entries: list[tuple[str, int, dict[str, Any]]]) -> Study | None:
        path = imgs / img_name
        if not path.is_file():
            self.skip(f"imgs/{img_name}", "image file not found")
            return None
        qa: list[QA] = []
        for split, i, item in entries:
            question, answer = _text(item.get("question")), _text(item.get("answer"))
            if not question or not answer:
                self.skip(f"{split}.json[{i}] (qid {item.get('qid')})", "question or answer is empty")
                continue
            closed = _text(item.get("answer_type")).upper() == "CLOSED"
            qa.append(QA(question=question, answer=answer, closed=closed))
        if not qa:
            return None
        folder = Path(img_name).parent.name or Path(img_name).stem
        view = View(image_id=folder, path=str(path))
        self._add_boxes(path.parent / "detection.json", path, view)
        splits = sorted({split for split, _, _ in entries})
        meta: dict[str, Any] = {"splits": splits}
        if len(splits) == 1:
            meta["split"] = splits[0]
        return Study(study_id=f"{self.name}:{folder}", patient_id=f"{self.name}:{folder}", source=self.name,
                     licence=self.licence, views=[view], qa=qa, meta=meta)

    def _add_boxes(self, detection: Path, image: Path, view: View) -> None:
        """detection.json: [{"Heart": [x, y, w, h]}, ...] in image pixels -> view boxes (and view size)."""
        if not detection.is_file():
            return
        item = str(detection.relative_to(self.root))
        try:
            view.size = image_size(image)
            entries = json.loads(detection.read_text(encoding="utf-8"))
            if not isinstance(entries, list):
                raise ValueError("not a JSON list")
        except (OSError, ValueError) as e:
            self.skip(item, f"boxes unreadable: {e}")
            return
        height, width = view.size
        for entry in entries:
            for organ, coords in (entry.items() if isinstance(entry, dict) else [("?", entry)]):
                try:
                    x, y, w, h = (float(v) for v in coords)
                    view.boxes.append(Box.from_pixels(" ".join(organ.lower().split()), x, y, x + w, y + h,
                                                      width, height))
                except (TypeError, ValueError) as e:
                    self.skip(f"{item}: {organ}", f"unusable box {coords!r}: {e}")
