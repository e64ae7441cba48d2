"""VQA-RAD: clinician-written questions and answers about radiology images; the chest radiographs are kept.

Expected layout (`root` is the folder of the OSF download):

    VQA_RAD Dataset Public.json    a list of {"qid", "image_name": "synpic54610.jpg", "image_case_url",
                                   "image_organ": "CHEST" / "HEAD" / "ABD", "question", "answer",
                                   "answer_type": "CLOSED" / "OPEN", "phrase_type": "freeform" / "para" /
                                   "test_freeform" / "test_para", ...}
    VQA_RAD Image Folder/synpic54610.jpg

Records: one study per chest image (image_organ CHEST; VQA-RAD's chest images are radiographs) holding every
question asked about it as `QA` (closed when answer_type is CLOSED), in file order. The MedPix case of
`image_case_url` is the patient (`vqa_rad:<case id>`), so images of one case stay together. meta `qa_splits`
gives, for each QA in order, "test" for the official test questions (phrase_type test_*) and "train" otherwise.
Images of other organs are left out (counted in the log, not listed as skipped); questions without text or answer
and images that are missing are skipped with the reason.

Licence: CC0 1.0 (public domain dedication).
Citation: Lau JJ, Gayen S, Ben Abacha A, Demner-Fushman D. A dataset of clinically generated visual questions and
answers about radiology images. Scientific Data 5, 180251 (2018).
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import QA, Study, View
from cxrvlm.sources.base import Source, register_source

log = logging.getLogger(__name__)

_JSON = "VQA_RAD Dataset Public.json"
_IMAGES = "VQA_RAD Image Folder"


def _text(value: Any) -> str:
    """A JSON value as stripped text (answers can be numbers: 0 must stay "0")."""
    return "" if value is None else str(value).strip()


def _case_id(url: str) -> str | None:
    """The MedPix case id of an image_case_url (its `id=` parameter or last path part)."""
    m = re.search(r"[?&]id=([^&#]+)", url or "")
    if m:
        return m.group(1)
    tail = (url or "").rstrip("/").rsplit("/", 1)[-1]
    return tail or None


@register_source
class VQARAD(Source):
    name = "vqa_rad"
    licence = "CC0 1.0"
    citation = "Lau JJ, Gayen S, Ben Abacha A, Demner-Fushman D. A dataset of clinically generated visual " \
               "questions and answers about radiology images. Scientific Data 5, 180251 (2018)."

    def _studies(self) -> Iterator[Study]:
        path = self.require(_JSON)
        images = self.require(_IMAGES)
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"source {self.name!r}: {path} is not readable JSON: {e}") from None
        if not isinstance(items, list):
            raise ValueError(f"source {self.name!r}: {path} must hold a JSON list of question records")
        groups = self._chest_groups(items)
        for image_name, entries in groups.items():
            study = self._study(images / image_name, entries)
            if study is not None:
                yield study

    def _chest_groups(self, items: list[Any]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        """image_name -> [(index in the file, item)] for chest images, in file order."""
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        other = 0
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not str(item.get("image_name") or "").strip():
                self.skip(f"{_JSON}[{i}]", "record without image_name")
                continue
            if str(item.get("image_organ") or "").strip().upper() != "CHEST":
                other += 1
                continue
            groups.setdefault(str(item["image_name"]).strip(), []).append((i, item))
        log.info("%s: %d questions about chest images, %d about other organs left out",
                 self.name, sum(len(g) for g in groups.values()), other)
        return groups

    def _study(self, path: Path, entries: list[tuple[int, dict[str, Any]]]) -> Study | None:
        if not path.is_file():
            self.skip(f"{_IMAGES}/{path.name}", "image file not found")
            return None
        qa: list[QA] = []
        splits: list[str] = []
        for i, item in entries:
            question, answer = _text(item.get("question")), _text(item.get("answer"))
            if not question or not answer:
                self.skip(f"{_JSON}[{i}] (qid {item.get('qid')})", "question or answer is empty")
                continue
            closed = str(item.get("answer_type") or "").strip().upper() == "CLOSED"
            qa.append(QA(question=question, answer=answer, closed=closed))
            splits.append("test" if str(item.get("phrase_type") or "").startswith("test") else "train")
        if not qa:
            return None
        case = _case_id(str(entries[0][1].get("image_case_url") or "")) or path.stem
        return Study(study_id=f"{self.name}:{path.stem}", patient_id=f"{self.name}:{case}", source=self.name,
                     licence=self.licence, views=[View(image_id=path.stem, path=str(path))], qa=qa,
                     meta={"qa_splits": splits})
