"""Canonical studies for the task tests (format needs only paths, so the paths are fake) and malformed model texts.

Import from a test in this folder: `from task_studies import tb_study, covid_study, MALFORMED`.
"""
from __future__ import annotations

import math

import numpy as np

from cxrvlm.records import QA, Box, Report, Study, View

DIAGNOSES = ("COVID-19", "Viral Pneumonia", "Bacterial Pneumonia", "Fungal Pneumonia", "Pneumocystis", "Pneumonia")

# Model outputs no task may accept: garbage bytes, control characters, truncated loc tokens, empty, runaway.
MALFORMED = (
    "",
    "   \n\t ",
    "\x00\x01\x02\x9b\ufffd",
    "yes\x00no",
    "<loc0012><loc0300><loc05",
    "<loc0012><loc0300>",
    "x" * 100_001,
)


def tb_study(i: int = 0, positive: bool = True, path: str | None = "/data/tb/img.png") -> Study:
    tb = 1.0 if positive else 0.0
    return Study(f"tb:{i}", f"p{i}", "tb", "research", views=[View(f"img{i}", path=path)],
                 labels={"Tuberculosis": tb, "No Finding": 1.0 - tb})


def lungs_mask(height: int = 60, width: int = 80, right_width: int = 20, left_width: int = 26) -> np.ndarray:
    """Two separate lung blobs; the image's left blob is the patient's right lung."""
    m = np.zeros((height, width), bool)
    m[10:50, 8:8 + right_width] = True
    m[10:50, width - 8 - left_width:width - 8] = True
    return m


def covid_study(with_prior: bool = True, interval: float = 12.0, notes: str | None = "Bilateral opacities.",
                extent: float = 5.5, prior_extent: float = 2.0) -> Study:
    """Frontal (boxes, mask) + lateral, COVID-19 labels in the collection's hierarchy, scores, prior, case notes."""
    frontal = View("f", path="/data/covid/f.png", view_position="PA", size=(60, 80),
                   boxes=[Box("right lung", 0.1, 0.1, 0.45, 0.9), Box("left lung", 0.55, 0.1, 0.9, 0.8)],
                   masks={"lungs": lungs_mask()})
    lateral = View("l", path="/data/covid/l.png", view_position="LATERAL")
    labels = {"COVID-19": 1.0, "Viral Pneumonia": 1.0, "Pneumonia": 1.0, "No Finding": 0.0,
              "Bacterial Pneumonia": 0.0, "Fungal Pneumonia": 0.0, "Pneumocystis": 0.0}
    prior = None
    if with_prior:
        prior = Study("covid:1:day0", "covid:1", "covid", "CC BY",
                      views=[View("p", path="/data/covid/p.png", view_position="AP")],
                      labels=dict(labels), scores={"geographic_extent": prior_extent, "opacity": 1.0})
    return Study("covid:1:day12", "covid:1", "covid", "CC BY", views=[frontal, lateral], labels=labels,
                 report=Report(findings=notes, kind="case_notes") if notes else None,
                 prior=prior, prior_interval_days=interval if with_prior else None,
                 scores={"geographic_extent": extent, "opacity": 3.0},
                 qa=[QA("What does the arrow point to?", "Consolidation", closed=False),
                     QA("Is there a pleural effusion?", "No", closed=True)])


def chexpert_study(all_known: bool = True) -> Study:
    """A radiology report with the CheXpert observations (one unknown unless `all_known`), two boxes of one label
    and one of another."""
    from cxrvlm.records import CHEXPERT_14

    labels = {k: 0.0 for k in CHEXPERT_14}
    labels.update({"Cardiomegaly": 1.0, "Lung Lesion": 1.0})
    if not all_known:
        labels["Pleural Effusion"] = math.nan
    view = View("c", path="/data/c.png", view_position="PA",
                boxes=[Box("Lung Lesion", 0.1, 0.2, 0.2, 0.3), Box("Cardiomegaly", 0.4, 0.5, 0.7, 0.8),
                       Box("Lung Lesion", 0.6, 0.2, 0.7, 0.35)])
    return Study("c1", "pc", "mimic", "PhysioNet", views=[view], labels=labels,
                 report=Report(findings="Enlarged heart. Two nodules.", impression="Cardiomegaly.", kind="report"))


def text_only_study() -> Study:
    return Study("openi:1", "openi:1", "openi", "CC", views=[], labels={"Cardiomegaly": 1.0},
                 report=Report(findings="Heart is enlarged.", impression="Cardiomegaly."))


def provide_metric(monkeypatch, name: str, submodule: str) -> None:
    """Make `cxrvlm.metrics.<name>` importable from its submodule while the package does not export it yet; skip
    when the metric itself is not written."""
    import importlib

    import pytest

    import cxrvlm.metrics

    if hasattr(cxrvlm.metrics, name):
        return
    try:
        cls = getattr(importlib.import_module(f"cxrvlm.metrics.{submodule}"), name)
    except (ImportError, AttributeError):
        pytest.skip(f"cxrvlm.metrics.{name} is not available")
    monkeypatch.setattr(cxrvlm.metrics, name, cls, raising=False)
