"""Readings as FHIR R4 resources (`fhir.resources`' R4B models, the R4-compatible release it ships; the `fhir`
extra): a Bundle of type "collection" holding, per reading, a DiagnosticReport (status preliminary: a machine's
reading for a person to confirm) and an Observation for the TB probability and for each finding probability.

    bundle = readings_bundle(readings)        # a validated fhir.resources Bundle; bundle.model_dump_json()

A reading that is not assessable gives a DiagnosticReport whose conclusion is the reasons, with no Observation; an
input that failed (a {"image", "error"} line) gives nothing. Every resource carries the research-use notice.
"""
from __future__ import annotations

import importlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from cxrvlm.about import NOTICE

_EXTRA = "pip install 'cxrvlm[fhir]'"
PROBABILITY = {"unit": "probability", "system": "http://unitsofmeasure.org", "code": "1"}
RADIOLOGY = {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def require() -> ModuleType:
    """fhir.resources' R4B Bundle module; ImportError naming the extra when it is not installed."""
    try:
        return importlib.import_module("fhir.resources.R4B.bundle")
    except ImportError:
        raise ImportError(f"FHIR export needs fhir.resources: {_EXTRA}") from None


def _observation(code: str, probability: float, positive: bool | None, issued: str) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": str(uuid.uuid4()), "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging", "display": "Imaging"}]}],
        "code": {"text": code}, "issued": issued,
        "valueQuantity": {"value": round(float(probability), 6), **PROBABILITY},
        "note": [{"text": NOTICE}]}
    if positive is not None:
        obs["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": "POS" if positive else "NEG"}]}]
    return obs


def reading_resources(reading: dict[str, Any], issued: str) -> list[dict[str, Any]]:
    """[DiagnosticReport, Observation...] of one reading, as FHIR JSON dicts ([] for a failed input)."""
    if "error" in reading:
        return []
    quality = reading.get("quality") or {}
    observations = []
    if quality.get("assessable", True):
        verdict = reading.get("verdict") or {}
        calls = verdict.get("source") == "label head"  # the decoder's findings are a ranking, not calls
        called = set(verdict.get("called", []))
        tb = reading.get("tb")
        if tb:
            observations.append(_observation("Tuberculosis probability", tb["probability"],
                                             tb["label"] == "tuberculosis", issued))
        for f in reading.get("findings", []):
            observations.append(_observation(f"{f['label']} probability", f["probability"],
                                             f["label"] in called if calls else None, issued))
        conclusion = f"{verdict.get('label') or (tb or {}).get('label', '')}. {reading.get('report', '')}".strip()
    else:
        conclusion = "Not assessable: " + "; ".join(quality.get("reasons", []))
    report = {
        "resourceType": "DiagnosticReport", "id": str(uuid.uuid4()), "status": "preliminary",
        "category": [{"coding": [RADIOLOGY]}], "code": {"text": "Chest X-ray reading by cxrvlm"}, "issued": issued,
        "result": [{"reference": f"urn:uuid:{o['id']}"} for o in observations],
        "conclusion": f"{conclusion} {NOTICE} Model: {reading.get('model', '')}; image: {reading.get('image', '')}."}
    return [report, *observations]


def readings_bundle(readings: Sequence[dict[str, Any]]) -> Any:
    """A validated FHIR Bundle (collection) of every reading's resources."""
    issued = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r}
               for reading in readings for r in reading_resources(reading, issued)]
    return require().Bundle.model_validate({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection",
                                            "timestamp": issued, "entry": entries})
