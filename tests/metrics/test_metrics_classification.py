"""Classification metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cxrvlm.metrics import (
    ClassificationMetric,
    auroc,
    binary_at_threshold,
    bootstrap_ci,
    choose_threshold,
    roc_curve,
)
from cxrvlm.examples import Prediction


def test_auroc_by_hand():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 1 + 0 + 1 + 1 = 3 of 4
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts 1/2: (2 + 1.5) / 4
    assert auroc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5]) == pytest.approx(0.875)
    assert auroc([1, 1, 0], [0.2, 0.3, 0.9]) == pytest.approx(0.0)


def test_auroc_undefined_and_bad_input():
    assert math.isnan(auroc([0, 0, 0], [0.1, 0.2, 0.3]))  # no positives
    assert math.isnan(auroc([1, 1], [0.1, 0.2]))  # no negatives
    with pytest.raises(ValueError, match="0 .* 1"):
        auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        auroc([0, 1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        auroc([0, 1], [0.1, float("nan")])


def test_roc_curve_by_hand():
    fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert list(thr) == [np.inf, 0.8, 0.4, 0.35, 0.1]
    assert list(tpr) == [0, 0.5, 0.5, 1, 1]
    assert list(fpr) == [0, 0, 0.5, 0.5, 1]


def test_binary_at_threshold_by_hand():
    r = binary_at_threshold([1, 1, 0, 0, 1], [0.9, 0.5, 0.6, 0.1, 0.55], 0.55)
    # called positive: 0.9 (TP), 0.6 (FP), 0.55 (TP); not: 0.5 (FN), 0.1 (TN)
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (2, 1, 1, 1)
    assert r["sensitivity"] == pytest.approx(2 / 3)
    assert r["specificity"] == pytest.approx(1 / 2)
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["ppv"] == pytest.approx(2 / 3)
    assert math.isnan(binary_at_threshold([0, 0], [0.2, 0.9], 0.5)["sensitivity"])


def test_choose_threshold_on_validation_then_apply_to_test():
    pos = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.2]
    neg = [0.5, 0.45, 0.4, 0.3, 0.1]
    y, s = [1] * 10 + [0] * 5, pos + neg
    # t = 0.55 calls 9 of 10 positives (sensitivity 0.9) and no negative (specificity 1); t = 0.6 reaches only 0.8
    assert choose_threshold(y, s, 0.9) == 0.55
    # sensitivity 1 needs t = 0.2, which calls 4 of 5 negatives positive
    t = choose_threshold(y, s, 1.0)
    assert t == 0.2 and binary_at_threshold(y, s, t)["specificity"] == pytest.approx(0.2)
    test = binary_at_threshold([1, 1, 0, 0], [0.56, 0.54, 0.55, 0.1], 0.55)  # the same t, unchanged
    assert (test["sensitivity"], test["specificity"]) == (0.5, 0.5)
    with pytest.raises(ValueError, match="no positive"):
        choose_threshold([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="min_sensitivity"):
        choose_threshold(y, s, 1.5)


def test_bootstrap_ci_properties():
    x = np.array([0.0, 1.0] * 20)
    lo, hi = bootstrap_ci(np.mean, x, n_boot=300, seed=1)
    assert 0.3 < lo < 0.5 < hi < 0.7
    assert bootstrap_ci(np.mean, x, n_boot=300, seed=1) == (lo, hi)  # seeded
    assert bootstrap_ci(np.mean, np.ones(5), n_boot=50) == (1.0, 1.0)
    # stratified: every resample keeps both classes, so a perfect separation stays exactly 1
    y, s = np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert bootstrap_ci(auroc, y, s, n_boot=200, strata=y) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci(auroc, [0, 0], [0.1, 0.2], n_boot=20))
    assert all(math.isnan(v) for v in bootstrap_ci(np.mean, np.array([]), n_boot=20))
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(auroc, [0, 1], [0.1])


def _pred(label, p_tb=None, valid=True):
    extra = {"probs": {"normal": 1 - p_tb, "tuberculosis": p_tb}} if p_tb is not None else {}
    return Prediction(task="classify", valid=valid, label=label, extra=extra)


def _tb_metric(**kw):
    m = ClassificationMetric(["normal", "tuberculosis"], positive="tuberculosis", n_boot=200, **kw)
    cases = [("tuberculosis", _pred("tuberculosis", 0.9)), ("tuberculosis", _pred("normal", 0.4)),
             ("tuberculosis", _pred(None, valid=False)), ("normal", _pred("normal", 0.2)),
             ("normal", _pred("tuberculosis", 0.6)), ("normal", _pred(None, valid=False))]
    for truth, pred in cases:
        m.update(pred, {"label": truth, "candidates": ["normal", "tuberculosis"]})
    return m


def test_binary_classification_metric_by_hand():
    m = _tb_metric(threshold=0.5)
    r = m.compute()
    assert (r["n"], r["n_invalid"]) == (6, 2)
    assert r["accuracy"] == pytest.approx(2 / 6)
    # invalid = wrong: an FN on the TB case, an FP on the normal case -> TP 1, FN 2, FP 2, TN 1
    assert r["sensitivity"] == pytest.approx(1 / 3) and r["specificity"] == pytest.approx(1 / 3)
    assert r["precision"] == pytest.approx(1 / 3) and r["f1"] == pytest.approx(1 / 3)
    # scores: TB 0.9, 0.4, 0.5 (invalid, no probs); normal 0.2, 0.6, 0.5 -> pairs won 3 + 1 + 1.5 of 9
    assert r["auroc"] == pytest.approx(5.5 / 9)
    assert r["auroc_ci_low"] <= r["auroc"] <= r["auroc_ci_high"]
    assert r["accuracy_ci_low"] <= r["accuracy"] <= r["accuracy_ci_high"]
    # threshold 0.5 fixed elsewhere: called 0.9, 0.5 | 0.6, 0.5 -> sensitivity 2/3, specificity 1/3
    assert r["sensitivity_at_threshold"] == pytest.approx(2 / 3)
    assert r["specificity_at_threshold"] == pytest.approx(1 / 3)
    assert r["accuracy_at_threshold"] == pytest.approx(3 / 6)
    # sensitivity >= 0.9 needs every TB case: t = 0.4 (specificity 1/3) beats t = 0.2 (specificity 0)
    assert r["chosen_threshold"] == 0.4 and r["chosen_threshold_specificity"] == pytest.approx(1 / 3)
    assert r["sensitivity_normal"] == pytest.approx(1 / 3)
    assert m.confusion().tolist() == [[1, 1, 1], [1, 1, 1]]
    m.reset()
    assert m.compute()["n"] == 0


def test_multiclass_perfect_and_macro():
    cands = ["a", "b", "c"]
    m = ClassificationMetric(cands, n_boot=50)
    for truth in ["a", "b", "c", "a"]:
        probs = {k: (0.8 if k == truth else 0.1) for k in cands}
        m.update(Prediction(task="classify", label=truth, extra={"probs": probs}), {"label": truth})
    r = m.compute()
    assert r["accuracy"] == 1.0 and r["f1_macro"] == 1.0 and r["auroc"] == 1.0
    assert r["sensitivity_b"] == 1.0 and r["specificity_b"] == 1.0
    assert "sensitivity" not in r  # no positive class: no binary view


def test_edge_cases_no_positives_and_all_invalid():
    m = ClassificationMetric(["normal", "tuberculosis"], positive="tuberculosis", n_boot=50)
    for p in (0.1, 0.7):
        m.update(_pred("normal", p), {"label": "normal"})
    r = m.compute()
    assert math.isnan(r["auroc"]) and math.isnan(r["sensitivity"]) and math.isnan(r["auroc_ci_low"])
    assert r["specificity"] == 1.0 and "chosen_threshold" not in r
    m = ClassificationMetric(["normal", "tuberculosis"], positive="tuberculosis", n_boot=50)
    for truth in ("normal", "tuberculosis"):
        m.update(Prediction(task="classify", valid=False, reason="garbage"), {"label": truth})
    r = m.compute()
    assert r["accuracy"] == 0.0 and r["n_invalid"] == 2 and r["auroc"] == 0.5
    empty = ClassificationMetric(["x", "y"], n_boot=10).compute()
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="distinct"):
        ClassificationMetric(["a"])
    with pytest.raises(ValueError, match="positive"):
        ClassificationMetric(["a", "b"], positive="c")
    m = ClassificationMetric(["a", "b"])
    with pytest.raises(ValueError, match="not one of"):
        m.update(_pred("a"), {"label": "z"})
    with pytest.raises(ValueError, match="missing field 'label'"):
        m.update(_pred("a"), {"answer": "a"})
    # a label outside the candidates is invalid, not an error
    m.update(Prediction(task="classify", label="banana"), {"label": "a"})
    assert m.compute()["n_invalid"] == 1
