"""VQA metrics against hand-computed values."""
from __future__ import annotations

import math

import pytest

from cxrvlm.metrics import ClosedVQAMetric, OpenVQAMetric, exact_match, normalize_answer, token_f1
from cxrvlm.examples import Prediction


def _p(answer, valid=True):
    return Prediction(task="vqa", valid=valid, answer=answer)


def test_normalisation_and_token_f1_by_hand():
    assert normalize_answer("The Left  Lung.") == "left lung"
    assert normalize_answer(None) == ""
    assert exact_match("An effusion!", "effusion") == 1.0
    assert exact_match("effusions", "effusion") == 0.0
    # pred {left, lower, lobe} vs ref {left, lobe}: overlap 2, P = 2/3, R = 1, F1 = 0.8
    assert token_f1("left lower lobe", "the left lobe") == pytest.approx(0.8)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("a b", "c") == 0.0


def test_closed_vqa_accuracy_by_hand():
    m = ClosedVQAMetric()
    target = {"answer": "yes", "candidates": ["yes", "no"]}
    m.update(_p("Yes."), target)  # right after normalisation
    m.update(_p("no"), target)  # wrong
    m.update(_p(None, valid=False), target)  # invalid -> wrong
    m.update(_p("maybe"), target)  # outside the candidates -> wrong
    r = m.compute()
    assert r == {"n": 4, "n_invalid": 1, "n_out_of_set": 1, "accuracy": 0.25}
    m.reset()
    assert math.isnan(m.compute()["accuracy"])
    with pytest.raises(ValueError, match="not one of its candidates"):
        m.update(_p("yes"), {"answer": "perhaps", "candidates": ["yes", "no"]})


def test_open_vqa_by_hand():
    m = OpenVQAMetric()
    m.update(_p("the right lower lobe"), {"answer": "right lower lobe"})  # EM 1, F1 1
    m.update(_p("left lower lobe"), {"answer": "left lobe"})  # EM 0, F1 0.8
    m.update(_p("pleural effusion"), {"answers": ["effusion", "pleural effusion"]})  # best of the two: 1, 1
    m.update(_p(None, valid=False), {"answer": "anything"})  # 0, 0
    r = m.compute()
    assert r["n"] == 4 and r["n_invalid"] == 1
    assert r["exact_match"] == pytest.approx(2 / 4)
    assert r["token_f1"] == pytest.approx((1 + 0.8 + 1 + 0) / 4)
    with pytest.raises(ValueError, match="answer"):
        m.update(_p("x"), {"question": "?"})
