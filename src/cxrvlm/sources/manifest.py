"""A generic manifest for a user's own chest X-rays: one CSV or JSON-lines file beside the images.

Expected layout::

    root/
      manifest.csv  or  manifest.jsonl   (one of the two)
      <images, anywhere under root; paths in the manifest are relative to root (absolute paths also work)>

One row (CSV) or object (JSONL) is one study. Columns / keys:

- ``patient_id`` (required) — patient-level splits keep a patient's studies together.
- ``image`` — image path(s); several views of one study joined by ``|`` (a list in JSONL). A row may have no
  image only when it has report text (a text-only study).
- ``study_id`` — optional, unique; default ``<patient_id>:<first image>`` (``<patient_id>:line<N>`` without image).
- ``view`` — PA / AP / L(ATERAL) / frontal per image, ``|``-joined like ``image``; one value applies to all views.
- ``report`` (free text, kept as findings) or ``findings`` and ``impression``.
- labels: ``label:<Name>`` columns with 1 / 0 / -1 or empty (empty and -1 = unknown), and/or ``labels`` = positive
  names joined by ``|`` (other labels unknown). Use the names of `cxrvlm.records.LABELS` where one fits.
- ``boxes`` — JSON list of ``{"label", "x1", "y1", "x2", "y2"}`` (optional ``"view"``: index of the image, default
  0) in PIXELS of that image; the image size comes from ``width``/``height`` (single-image rows) or the file's
  header. Set ``box_units`` to ``normalised`` for coordinates already in [0, 1].
- ``mask:<Label>`` — mask image path(s) relative to root (nonzero = inside), ``|``-aligned with ``image``.
- ``question`` / ``answer`` — one QA pair (a yes/no answer marks it close-ended); JSONL may give ``qa``: a list
  of ``{"question", "answer"}``.
- ``days`` — optional time of the study in days (any origin): a patient's studies are then linked to the
  immediately earlier one as ``prior``, with ``prior_interval_days``.
- ``licence`` — optional, default "user data (licence not stated)"; every other column goes into ``meta``.

A row with an error (missing image, bad label value, malformed boxes) is skipped with a reason naming the line and
column; the rest are read.

Licence and citation: those of the user's data (not known to this adapter).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrvlm.records import QA, Box, Report, Study, View, normalise_view_position
from cxrvlm.sources._common import image_size, link_priors, parse_float, parse_label, read_csv, read_jsonl
from cxrvlm.sources.base import Source, register_source

_KNOWN = {"patient_id", "image", "study_id", "view", "report", "findings", "impression", "labels", "boxes",
          "box_units", "question", "answer", "qa", "days", "licence", "width", "height"}
_YES_NO = {"yes", "no"}


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _split(row: dict[str, Any], key: str) -> list[str]:
    """A "|"-joined cell (or a JSON list) -> its stripped parts; [] when absent or empty."""
    value = row.get(key)
    if value is None:
        return []
    parts = value if isinstance(value, list) else str(value).split("|")
    return [str(p).strip() for p in parts] if any(str(p).strip() for p in parts) else []


class ManifestError(ValueError):
    """A manifest row that cannot be read; the message names the column and the reason."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"column {column!r}: {reason}")


@register_source
class ManifestSource(Source):
    name = "manifest"
    licence = "user data (licence not stated)"
    citation = "the user's own data"

    def _manifest(self) -> Path:
        found = [self.root / n for n in ("manifest.csv", "manifest.jsonl") if (self.root / n).is_file()]
        if not found:
            raise ValueError(f"source 'manifest': neither manifest.csv nor manifest.jsonl found in {self.root}")
        if len(found) == 2:
            raise ValueError(f"source 'manifest': both manifest.csv and manifest.jsonl in {self.root}; keep one")
        return found[0]

    def _rows(self, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
        if path.suffix == ".csv":
            return read_csv(path, required=("patient_id",))
        return read_jsonl(path, self.skip)

    def _studies(self) -> Iterator[Study]:
        path = self._manifest()
        studies: list[Study] = []
        seen: dict[str, int] = {}
        timelines: dict[str, list[tuple[float, Study]]] = {}
        for line, row in self._rows(path):
            item = f"{path.name} line {line}"
            try:
                study, days = self._study(line, row)
                if study.study_id in seen:
                    raise ManifestError("study_id", f"{study.study_id!r} already used at line {seen[study.study_id]}; "
                                        "give the views of one study in one row, joined by |")
            except ValueError as e:
                self.skip(item, str(e))
                continue
            seen[study.study_id] = line
            studies.append(study)
            if not math.isnan(days):
                timelines.setdefault(study.patient_id, []).append((days, study))
        for timeline in timelines.values():
            link_priors(timeline)
        yield from studies

    def _study(self, line: int, row: dict[str, Any]) -> tuple[Study, float]:
        """One row -> (Study, days or NaN); ManifestError naming the column when a value is unusable."""
        patient = _text(row, "patient_id")
        if not patient:
            raise ManifestError("patient_id", "empty")
        views = self._views(row)
        report = self._report(row)
        if not views and not report:
            raise ManifestError("image", "no image and no report text")
        try:
            days = parse_float(row.get("days"), "days")
        except ValueError as e:
            raise ManifestError("days", str(e)) from None
        study_id = _text(row, "study_id") or (f"{patient}:{views[0].image_id}" if views else f"{patient}:line{line}")
        meta = {k: v for k, v in row.items() if k not in _KNOWN and not k.startswith(("label:", "mask:"))}
        study = Study(
            study_id=study_id, patient_id=patient, source=self.name, licence=_text(row, "licence") or self.licence,
            views=views, labels=self._labels(row), report=report or None, qa=self._qa(row), meta=meta,
        )
        return study, days

    def _views(self, row: dict[str, Any]) -> list[View]:
        paths = _split(row, "image")
        positions = _split(row, "view") or [""]
        if len(positions) == 1:
            positions = positions * len(paths)
        if len(positions) != len(paths):
            raise ManifestError("view", f"{len(positions)} values for {len(paths)} images")
        views = []
        for rel, position in zip(paths, positions):
            if not rel:
                raise ManifestError("image", "an empty path between '|'")
            path = self.root / rel
            if not path.is_file():
                raise ManifestError("image", f"{rel} not found under {self.root}")
            vp = normalise_view_position(position)
            if position and vp is None and position.lower() not in ("frontal", "unknown"):
                raise ManifestError("view", f"{position!r} is not PA, AP, L/LATERAL or frontal")
            views.append(View(image_id=rel, path=str(path), view_position=vp))
        if len(views) == 1 and row.get("width") not in (None, "") and row.get("height") not in (None, ""):
            try:
                views[0].size = (int(row["height"]), int(row["width"]))
            except (TypeError, ValueError):
                raise ManifestError("width/height", f"{row['width']!r}/{row['height']!r} are not integers") from None
        self._add_masks(row, views)
        self._add_boxes(row, views)
        return views

    def _add_masks(self, row: dict[str, Any], views: list[View]) -> None:
        for column in (k for k in row if k.startswith("mask:")):
            label = column[len("mask:"):].strip()
            parts = _split(row, column)
            if len(parts) > len(views):
                raise ManifestError(column, f"{len(parts)} masks for {len(views)} images")
            for view, rel in zip(views, parts):
                if not rel:
                    continue  # this view has no mask for the label
                if not (self.root / rel).is_file():
                    raise ManifestError(column, f"{rel} not found under {self.root}")
                view.masks[label] = str(self.root / rel)

    def _add_boxes(self, row: dict[str, Any], views: list[View]) -> None:
        raw = row.get("boxes")
        if raw in (None, "", []):
            return
        try:
            boxes = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as e:
            raise ManifestError("boxes", f"not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(boxes, list):
            raise ManifestError("boxes", f"expected a JSON list of boxes, got {type(boxes).__name__}")
        units = _text(row, "box_units").lower() or "pixels"
        if units not in ("pixels", "normalised", "normalized"):
            raise ManifestError("box_units", f"{units!r} is not 'pixels' or 'normalised'")
        for i, b in enumerate(boxes):
            try:
                index = int(b.get("view", 0))
                if not 0 <= index < len(views):
                    raise IndexError(f"view {index} but the row has {len(views)} image(s)")
                view = views[index]
                corners = [float(b[k]) for k in ("x1", "y1", "x2", "y2")]
                label = str(b["label"]).strip()
                if units == "pixels":
                    if view.size is None:
                        view.size = image_size(view.path)
                    box = Box.from_pixels(label, *corners, width=view.size[1], height=view.size[0])
                else:
                    box = Box(label, *corners)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError) as e:
                raise ManifestError("boxes", f"box {i}: {type(e).__name__}: {e}") from None
            view.boxes.append(box)

    @staticmethod
    def _report(row: dict[str, Any]) -> Report:
        findings, impression = _text(row, "findings"), _text(row, "impression")
        if not (findings or impression):
            findings = _text(row, "report")
        return Report(findings=findings, impression=impression, kind="report")

    @staticmethod
    def _labels(row: dict[str, Any]) -> dict[str, float]:
        labels = {name: 1.0 for name in _split(row, "labels") if name}
        for column in (k for k in row if k.startswith("label:")):
            try:
                value = parse_label(row[column], column)
            except ValueError:
                raise ManifestError(column, f"{row[column]!r} is not 1, 0, -1 or empty") from None
            if not math.isnan(value):
                labels[column[len("label:"):].strip()] = value
        return labels

    @staticmethod
    def _qa(row: dict[str, Any]) -> list[QA]:
        out = []
        question, answer = _text(row, "question"), _text(row, "answer")
        if question or answer:
            if not (question and answer):
                raise ManifestError("answer" if question else "question", "empty while the other one is given")
            out.append(QA(question=question, answer=answer, closed=answer.lower() in _YES_NO))
        pairs = row.get("qa") or []
        if not isinstance(pairs, list):
            raise ManifestError("qa", "expected a list of {question, answer} objects")
        for i, pair in enumerate(pairs):
            q, a = (_text(pair, "question"), _text(pair, "answer")) if isinstance(pair, dict) else ("", "")
            if not (q and a):
                raise ManifestError("qa", f"item {i} needs both a question and an answer")
            out.append(QA(question=q, answer=a, closed=a.lower() in _YES_NO))
        return out
