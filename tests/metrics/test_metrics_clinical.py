"""Clinical efficacy F1 (mF1-14 / mF1-5) against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cxrvlm.metrics import clinical_f1
from cxrvlm.metrics.clinical import binarize, f1_table
from cxrvlm.records import CHEXPERT_14


def test_f1_table_by_hand():
    pred = np.array([[1, 0, 1], [1, 0, 0]], dtype=bool)
    ref = np.array([[1, 0, 0], [0, 0, 0]], dtype=bool)
    t = f1_table(pred, ref, ["a", "b", "c"])
    # pooled: TP 1, FP 2, FN 0 -> F1 2/4; per label: a 2/3, b undefined (left out), c 0 -> macro 1/3
    assert t["micro_f1"] == pytest.approx(0.5) and t["micro_precision"] == pytest.approx(1 / 3)
    assert t["macro_f1"] == pytest.approx(1 / 3)
    assert math.isnan(t["f1_b"]) and t["f1_a"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        f1_table(pred, ref[:, :2], ["a", "b", "c"])


def test_uncertain_counts_positive_by_default():
    labels = np.array([[1, -1, 0, np.nan]])
    assert binarize(labels).tolist() == [[True, True, False, False]]
    assert binarize(labels, uncertain_as_positive=False).tolist() == [[True, False, False, False]]


def _stub_labeler(texts):
    """Reads the labels off the text: "Cardiomegaly=1;Edema=-1" -> a (N, 14) row."""
    out = np.full((len(texts), 14), np.nan)
    for i, t in enumerate(texts):
        for item in filter(None, t.split(";")):
            k, v = item.split("=")
            out[i, CHEXPERT_14.index(k)] = float(v)
    return out


def test_clinical_f1_with_a_given_labeler():
    gen = ["Cardiomegaly=1;Edema=-1", "Atelectasis=0", "Pneumothorax=1"]
    ref = ["Cardiomegaly=1;Edema=1", "Atelectasis=1", "Pneumothorax=0"]
    r = clinical_f1(gen, ref, labeler=_stub_labeler)
    # positives: gen {Card, Edema (uncertain), PTX}; ref {Card, Edema, Atel} -> TP 2, FP 1, FN 1 -> 4/6
    assert r["f1_14_micro"] == pytest.approx(4 / 6)
    # per label: Card 1, Edema 1, Atel 0, PTX 0 -> macro 1/2; the 5: Card, Edema, Atel -> TP 2, FN 1 -> 4/5
    assert r["f1_14_macro"] == pytest.approx(0.5)
    assert r["f1_5_micro"] == pytest.approx(4 / 5) and r["f1_5_macro"] == pytest.approx(2 / 3)
    assert r["chexpert_f1_pneumothorax"] == 0.0 and math.isnan(r["chexpert_f1_fracture"])
    strict = clinical_f1(gen, ref, labeler=_stub_labeler, uncertain_as_positive=False)
    assert strict["f1_14_micro"] == pytest.approx(2 / 5)  # Edema: reference positive, generated uncertain -> FN
    with pytest.raises(ValueError, match="2 generated reports but 1"):
        clinical_f1(["a", "b"], ["a"])


def test_clinical_f1_with_the_rule_labeler():
    gen = ["Mild cardiomegaly. No pleural effusion.", "No pneumothorax."]
    ref = ["Moderate cardiomegaly and a small left pleural effusion.", "Small right pneumothorax."]
    r = clinical_f1(gen, ref)
    # gen positives: Cardiomegaly, No Finding (report 2); ref: Cardiomegaly, Pleural Effusion, Pneumothorax
    # -> TP 1, FP 1, FN 2 -> 2 / 5
    assert r["f1_14_micro"] == pytest.approx(0.4)
    assert r["f1_5_micro"] == pytest.approx(2 / 3)  # the 5: Cardiomegaly TP, Effusion FN
