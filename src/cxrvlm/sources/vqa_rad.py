"""VQA-RAD: clinician-written questions and answers about radiology images of the chest, head and abdomen.

Expected layout (`root` is the folder of the OSF download):

    VQA_RAD Dataset Public.json    a list of {"qid", "image_name": "synpic54610.jpg", "image_case_url" (optional),
                                   "image_organ": "CHEST" / "HEAD" / "ABD", "question", "answer",
                                   "answer_type": "CLOSED" / "OPEN", "question_type": "PRES" / "POS" / ...,
                                   "phrase_type": "freeform" / "frame" / "para" / "test_freeform" / "test_para"}
    VQA_RAD Image Folder/synpic54610.jpg

Records: one study per image holding every question asked about it as `QA` (closed when answer_type is CLOSED), in
file order. The MedPix case of `image_case_url` is the patient (`vqa_rad:<case id>`), so images of one case stay
together; without the url the image is its own patient. View position is None (the file does not say PA or AP).

Organs: VQA-RAD's chest images are radiographs; its head and abdomen images are CT, MRI and plain films. Every image
is yielded, and a non-chest one is marked ``meta["organ"]`` = "head" / "abdomen" (`Study.organ`), so curation can
leave it out (its default) or keep it as a real "not a chest radiograph" input; chest studies have "chest".

Official split: VQA-RAD's test questions are the ones whose phrase_type starts with "test". Each QA keeps in its
``meta`` the ``qid``, ``question_type``, ``phrase_type`` and ``official_split`` ("test" or "train"), and the vqa task
copies that into the example's meta, so evaluation can quote the official test questions apart from the
patient-level split; ``meta["official_test_questions"]`` counts them per study.

Cleaning, each reported through `skipped`: a record without image_name, question or answer is skipped; a question
asked again on one image with the same answer (the publisher repeats its templated "frame" questions) keeps its
first copy (an open question answered in other words, "left" / "left lung", keeps its first answer); a closed
question answered both ways on one image is skipped in every copy (which answer is right is unknown). The templated
questions' trailing " -open" marker is removed from the question text.

Licence: CC0 1.0 (public domain dedication).
Citation: Lau JJ, Gayen S, Ben Abacha A, Demner-Fushman D. A dataset of clinically generated visual questions and
answers about radiology images. Scientific Data 5, 180251 (2018).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import QA, Study, View
from cxrvlm.sources.base import Source, register_source

_JSON = "VQA_RAD Dataset Public.json"
_IMAGES = "VQA_RAD Image Folder"
_ORGANS = {"CHEST": "chest", "HEAD": "head", "ABD": "abdomen"}
_FRAME_MARKER = re.compile(r"\s+-\s*(?:open|closed)\s*$", re.IGNORECASE)  # "How wide is/are ...? -open"


def _text(value: Any) -> str:
    """A JSON value as stripped text (answers can be numbers: 0 must stay "0")."""
    return "" if value is None else str(value).strip()


def _key(text: str) -> str:
    """A question or answer as compared for repeats: lower case, whitespace collapsed, end punctuation dropped."""
    return " ".join(text.lower().split()).rstrip(" ?.")


def _organ(value: Any) -> str:
    """image_organ -> "chest" / "head" / "abdomen" (another value lower-cased; none: "unknown")."""
    text = _text(value).upper()
    return _ORGANS.get(text, text.lower() or "unknown")


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
        for image_name, entries in self._groups(items).items():
            study = self._study(images / image_name, entries)
            if study is not None:
                yield study

    def _groups(self, items: list[Any]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        """image_name -> [(index in the file, item)], in file order."""
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not _text(item.get("image_name")):
                self.skip(f"{_JSON}[{i}]", "record without image_name")
                continue
            groups.setdefault(_text(item["image_name"]), []).append((i, item))
        return groups

    def _study(self, path: Path, entries: list[tuple[int, dict[str, Any]]]) -> Study | None:
        if not path.is_file():
            self.skip(f"{_IMAGES}/{path.name}", "image file not found")
            return None
        qa = self._clean(self._questions(entries))
        if not qa:
            return None
        first = entries[0][1]
        organ = _organ(first.get("image_organ"))
        case = _case_id(_text(first.get("image_case_url"))) or path.stem
        meta = {"organ": organ, "official_test_questions": sum(q.meta["official_split"] == "test" for q in qa)}
        return Study(study_id=f"{self.name}:{path.stem}", patient_id=f"{self.name}:{case}", source=self.name,
                     licence=self.licence, views=[View(image_id=path.stem, path=str(path))], qa=qa, meta=meta)

    def _questions(self, entries: list[tuple[int, dict[str, Any]]]) -> list[QA]:
        """The image's records -> QA with the publisher's facts in meta; records without text are skipped."""
        out = []
        for i, item in entries:
            question, answer = _FRAME_MARKER.sub("", _text(item.get("question"))), _text(item.get("answer"))
            if not question or not answer:
                self.skip(f"{_JSON}[{i}] (qid {item.get('qid')})", "question or answer is empty")
                continue
            phrase_type = _text(item.get("phrase_type")).lower()
            meta = {"qid": item.get("qid"), "question_type": _text(item.get("question_type")) or None,
                    "phrase_type": phrase_type or None,
                    "official_split": "test" if phrase_type.startswith("test") else "train"}
            closed = _text(item.get("answer_type")).upper() == "CLOSED"
            out.append(QA(question=question, answer=answer, closed=closed, meta=meta))
        return out

    def _clean(self, qa: list[QA]) -> list[QA]:
        """One copy of each question of the image (per official split): the first. A closed question answered both
        ways is dropped in every copy (which answer is right is unknown)."""
        groups: dict[tuple[str, str], list[QA]] = {}
        for q in qa:
            groups.setdefault((_key(q.question), q.meta["official_split"]), []).append(q)
        kept = []
        for copies in groups.values():
            answers = list(dict.fromkeys(_key(q.answer) for q in copies))
            if len(answers) > 1 and any(q.closed for q in copies):
                for q in copies:
                    self.skip(f"{_JSON} qid {q.meta['qid']}", f"closed question {q.question!r} is answered "
                              f"{' and '.join(answers)} on this image")
                continue
            kept.append(copies[0])
            for q in copies[1:]:
                same = _key(q.answer) == _key(copies[0].answer)
                self.skip(f"{_JSON} qid {q.meta['qid']}", f"repeats qid {copies[0].meta['qid']} on this image"
                          + ("" if same else f" with another answer ({q.answer!r}; kept {copies[0].answer!r})"))
        return [q for q in qa if any(q is k for k in kept)]
