"""Indiana University / NLM Open-i chest X-ray reports, text only (the images are not part of this layout).

Expected layout::

    root/
      reports.jsonl   one JSON object a line: report_id, indication, comparison, findings, impression,
                      mesh_major (list of MeSH-style tags, e.g. "normal", "Cardiomegaly/mild"), mesh_automatic,
                      image_ids (Open-i image names)

One study per report, with no views: `Report(findings, impression, kind="report")`. ``XXXX`` (text removed for
de-identification) is kept as written. The patient is unknown, so each report is its own patient
(``openi:<report_id>``). Labels are the positives that the curators' MeSH major tags name
(`cxrvlm.sources._common.mesh_labels`; "normal" gives No Finding = 1); the raw tags are kept in
``meta["mesh_major"]`` and ``meta["mesh_automatic"]`` for validating a report labeler. A report with neither
findings nor impression is skipped.

Citation:
    Demner-Fushman D, Kohli MD, Rosenman MB, et al. Preparing a collection of radiology examinations for
    distribution and retrieval. J Am Med Inform Assoc 2016;23(2):304-310.
Licence: U.S. National Library of Medicine Open-i collection; CC BY-NC-ND 4.0 as given by Open-i (check
openi.nlm.nih.gov before any commercial use).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cxrvlm.records import Report, Study
from cxrvlm.sources._common import mesh_labels, read_jsonl
from cxrvlm.sources.base import Source, register_source


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} is a {type(value).__name__}, expected text")
    return value.strip()


def _tags(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key) or []
    if isinstance(value, str):  # some exports join the tags with ";"
        value = value.split(";")
    if not isinstance(value, list):
        raise ValueError(f"{key} is a {type(value).__name__}, expected a list of tags")
    return [str(t).strip() for t in value if str(t).strip()]


@register_source
class OpenISource(Source):
    name = "openi"
    licence = "CC BY-NC-ND 4.0 (U.S. National Library of Medicine, Open-i)"
    citation = (
        "Demner-Fushman et al., Preparing a collection of radiology examinations for distribution and retrieval, "
        "J Am Med Inform Assoc 2016;23(2):304-310"
    )

    def _studies(self) -> Iterator[Study]:
        path = self.require("reports.jsonl")
        seen: set[str] = set()
        for line, obj in read_jsonl(path, self.skip):
            report_id = str(obj.get("report_id") or "").strip()
            item = f"reports.jsonl line {line}" + (f" (report {report_id})" if report_id else "")
            if not report_id:
                self.skip(item, "no report_id")
                continue
            if report_id in seen:
                self.skip(item, f"report_id {report_id} already read from an earlier line")
                continue
            seen.add(report_id)
            try:
                study = self._study(report_id, obj)
            except ValueError as e:
                self.skip(item, str(e))
                continue
            yield study

    def _study(self, report_id: str, obj: dict[str, Any]) -> Study:
        report = Report(findings=_text(obj, "findings"), impression=_text(obj, "impression"), kind="report")
        if not report:
            raise ValueError("neither findings nor impression")
        mesh_major = _tags(obj, "mesh_major")
        meta = {
            "indication": _text(obj, "indication"),
            "comparison": _text(obj, "comparison"),
            "mesh_major": mesh_major,
            "mesh_automatic": _tags(obj, "mesh_automatic"),
            "image_ids": _tags(obj, "image_ids"),
        }
        return Study(
            study_id=f"openi:{report_id}", patient_id=f"openi:{report_id}", source=self.name, licence=self.licence,
            labels=mesh_labels(mesh_major), report=report, meta=meta,
        )
