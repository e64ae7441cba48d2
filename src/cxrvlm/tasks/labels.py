"""Image-level labels: one multi-label space over every source, read by the model's label head, not as text.

Each chest study with a frontal view and any known label in `LABEL_SPACE` gives one example on that view: empty
prefix and suffix (the decoder never learns it), target {"labels": {name: 0.0 | 1.0}} with only the labels the
study's source settles; the others are left out and masked from the loss (as torchxrayvision does). What settles a
label, beyond the source's own 1.0/0.0:
- a positive implies its broader diagnoses (COVID-19 -> viral pneumonia -> pneumonia, `_text.PARENT`);
- "No Finding" = 1 makes every other label 0, and any positive makes "No Finding" 0;
- a film diagnosed with a pneumonia (COVID-19, viral, bacterial, fungal, or pneumonia) whose TB label is unknown
  is TB-negative: the COVID collection, the Hannover films and NIH's pneumonia films each name the disease the
  patient had. These are the films a TB screening test must call "abnormal, not TB".

So the TB output is learnt against normal films and against other diseases, and each other abnormality has an
output of its own. Training: `cxrvlm train-probe --labels image` (encoder + head); the VLM carries the head
(`VLMConfig.label_names`) and the classification task reads its TB probability from it when it is there.
Metric: per-label AUROC on the films that settle the label, and the macro over labels with at least
`MIN_POSITIVES` positives.
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.calibration import ece
from cxrvlm.metrics.classification import auroc
from cxrvlm.records import Study
from cxrvlm.tasks import _text
from cxrvlm.tasks.base import Task, register
from cxrvlm.tokens.shape import TEXT

NAME = "image_labels"
TB = "Tuberculosis"
PNEUMONIAS = ("COVID-19", "Viral Pneumonia", "Bacterial Pneumonia", "Fungal Pneumonia", "Pneumonia")
NIH_FINDINGS = ("Atelectasis", "Cardiomegaly", "Pleural Effusion", "Infiltration", "Mass", "Nodule", "Pneumothorax",
                "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural Thickening", "Hernia")
LABEL_SPACE = (TB, _text.NO_FINDING, *PNEUMONIAS, *NIH_FINDINGS)
MIN_POSITIVES = 20  # a label's AUROC enters the macro only with this many positive films
PRESENT_AT = 0.5  # a label other than TB is called present when the head gives it at least this probability


def settled_labels(study: Study) -> dict[str, float]:
    """The study's labels in LABEL_SPACE that its source settles (rules in the module docstring)."""
    known = study.known_labels()
    out = {k: float(v) for k, v in known.items() if k in LABEL_SPACE}
    for name, value in known.items():  # a positive implies its broader diagnoses
        parent = _text.PARENT.get(name) if value == 1.0 else None
        while parent is not None:
            if parent in LABEL_SPACE:
                out[parent] = 1.0
            parent = _text.PARENT.get(parent)
    if out.get(_text.NO_FINDING) == 1.0:
        return {k: float(k == _text.NO_FINDING) for k in LABEL_SPACE}
    if any(v == 1.0 for k, v in out.items() if k != _text.NO_FINDING):
        out[_text.NO_FINDING] = 0.0
    if TB not in out and any(out.get(k) == 1.0 for k in PNEUMONIAS):
        out[TB] = 0.0
    return {k: out[k] for k in LABEL_SPACE if k in out}


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> one label example on its first frontal view (none without a settled label). `rng` is unused."""
    view = _text.first_frontal(study)
    labels = settled_labels(study) if view is not None else {}
    if not labels:
        return []
    return [_text.make_example(NAME, study, [view], "", "", {"labels": labels})]


def parse(text: str, image_size: tuple[int, int] | None = None) -> Prediction:
    """The head answers with probabilities, not text: any text is invalid here."""
    return Prediction(NAME, valid=False, reason="the labels task is read by the label head, not from text",
                      text=text if isinstance(text, str) else "")


def from_head(example: Example, head: Mapping[str, float], tb_threshold: float | None = None) -> dict[str, float]:
    """The head answers every label example with all its outputs (the metric ranks them: no operating point)."""
    return {k: float(v) for k, v in head.items()}


def called(head: Mapping[str, float], tb_threshold: float | None = None) -> list[str]:
    """The labels the head calls present, in the head's order: TB at the operating point `tb_threshold` (the
    screening decision; PRESENT_AT when None), every other label at PRESENT_AT, a called diagnosis's broader ones
    with it (COVID-19 -> viral pneumonia -> pneumonia), and "No Finding" only when nothing else is called."""
    out = {k for k, p in head.items() if k != _text.NO_FINDING and math.isfinite(p)
           and p >= (tb_threshold if k == TB and tb_threshold is not None else PRESENT_AT)}
    for name in list(out):
        parent = _text.PARENT.get(name)
        while parent is not None:
            if parent in head:
                out.add(parent)
            parent = _text.PARENT.get(parent)
    if not out and head.get(_text.NO_FINDING, 0.0) >= PRESENT_AT:
        out.add(_text.NO_FINDING)
    return [k for k in head if k in out]


def head_prediction(probs: Mapping[str, float]) -> Prediction:
    """The label head's probabilities for one film as a Prediction (`extra["probs"]`)."""
    return Prediction(NAME, text="", extra={"probs": {k: float(v) for k, v in probs.items()}})


class LabelsMetric:
    """Per-label AUROC over the films that settle each label; `labels_macro_auroc` over labels with at least
    MIN_POSITIVES positives (and one negative), `labels_n_pos_<label>` the positives each AUROC rests on;
    `labels_ece` the expected calibration error over every settled (film, label) pair, `labels_ece_tuberculosis`
    the TB output's."""

    def __init__(self, threshold: float | None = None, min_positives: int = MIN_POSITIVES, **_: Any) -> None:
        self.min_positives = min_positives
        self.reset()

    def reset(self) -> None:
        self.cases: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in LABEL_SPACE}
        self.invalid = 0

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        probs = (pred.extra or {}).get("probs") if pred.valid else None
        if not probs:
            self.invalid += 1
            return
        for name, y in (target.get("labels") or {}).items():
            p = probs.get(name)
            if name in self.cases and p is not None and math.isfinite(p):
                self.cases[name][0].append(float(y))
                self.cases[name][1].append(float(p))

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {"labels_invalid": float(self.invalid)}
        macro = []
        for name, (y, p) in self.cases.items():
            n_pos = int(sum(y))
            if not n_pos or n_pos == len(y):
                continue
            key = _text.phrase(name).replace(" ", "_")
            out[f"labels_auroc_{key}"] = auroc(y, p)
            out[f"labels_n_pos_{key}"] = float(n_pos)
            if n_pos >= self.min_positives:
                macro.append(out[f"labels_auroc_{key}"])
        if macro:
            out["labels_macro_auroc"] = float(np.mean(macro))
        pooled = [(y, p) for ys, ps in self.cases.values() for y, p in zip(ys, ps)]
        if pooled:  # how far the probabilities are from the observed shares (all settled labels of all films)
            out["labels_ece"] = ece([y for y, _ in pooled], [p for _, p in pooled])
        if self.cases[TB][0]:
            out["labels_ece_tuberculosis"] = ece(*self.cases[TB])
        return out


def metric(threshold: float | None = None, fast: bool = False) -> LabelsMetric:
    """Per-label AUROC (no bootstrap: the per-label counts are reported beside it)."""
    return LabelsMetric(threshold=threshold)


def label_vector(labels: Mapping[str, float], names: Sequence[str]) -> tuple[list[float], list[float]]:
    """(targets, mask) over `names`: a label the film does not settle gets mask 0 (left out of the loss)."""
    y = [float(labels.get(n, 0.0)) for n in names]
    m = [float(n in labels) for n in names]
    return y, m


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=0,  # nothing is generated
    headline=("labels_macro_auroc", "labels_auroc_tuberculosis"),
    answer_shape=TEXT, coordinates=False, by_head=True, from_head=from_head))
