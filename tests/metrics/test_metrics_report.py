"""Report metrics: BLEU by hand, pycocoevalcap and the clinical F1 through ReportMetric (Java started once)."""
from __future__ import annotations

import math
import shutil

import pytest

from cxrvlm.metrics import ReportMetric, bleu_per_sample_lowercase, coco_scores, sacrebleu_corpus, sentence_bleu
from cxrvlm.metrics import nlg
from cxrvlm.examples import Prediction

HYP = "the cat sat on the mat".split()
REF = "the cat is on the mat".split()


def test_sentence_bleu_by_hand():
    assert sentence_bleu(REF, REF) == pytest.approx(1.0)
    # clipped precisions: 1-gram 5/6 (the x2, cat, on, mat), 2-gram 3/5, 3-gram 1/4, 4-gram 0; equal lengths: BP 1
    assert sentence_bleu(HYP, REF, max_n=1) == pytest.approx(5 / 6)
    assert sentence_bleu(HYP, REF, max_n=2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert sentence_bleu(HYP, REF, max_n=3) == pytest.approx(0.5)  # (5/6 * 3/5 * 1/4) ** (1/3)
    assert sentence_bleu(HYP, REF, max_n=4) == 0.0  # no smoothing
    # brevity penalty exp(1 - r/c) = exp(1 - 6/2) for a 2-token hypothesis of a 6-token reference
    assert sentence_bleu(["the", "cat"], HYP, max_n=1) == pytest.approx(math.exp(-2))
    assert sentence_bleu([], REF) == 0.0


def test_per_sample_lowercase_and_sacrebleu():
    # PaliGemma-CXR style: per sample, lower-cased, averaged: (1 + 0) / 2
    assert bleu_per_sample_lowercase(["No acute DISEASE seen today.", ""],
                                     ["no acute disease seen today.", "x"]) == pytest.approx(0.5)
    assert sacrebleu_corpus(["no acute disease seen today ."], ["no acute disease seen today ."]) == pytest.approx(1.0)
    assert math.isnan(sacrebleu_corpus([], []))
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        bleu_per_sample_lowercase(["a", "b"], ["a"])


def test_coco_scores_without_java(monkeypatch):
    """Without Java: the Python tokenizer, METEOR NaN, the rest still computed."""
    monkeypatch.setattr(nlg.shutil, "which", lambda name: None)
    assert nlg.simple_tokenize("No effusion, pneumothorax.") == "no effusion pneumothorax"
    r = coco_scores(["Heart size is normal.", "Small left effusion."], ["heart size is normal", "small left effusion"])
    assert r["bleu_1"] == pytest.approx(1.0) and r["rouge_l"] == pytest.approx(1.0)
    assert math.isnan(r["meteor"])
    assert all(math.isnan(v) for v in coco_scores([], []).values())


def _end_to_end(meteor: bool) -> dict[str, float]:
    m = ReportMetric(meteor=meteor)
    cases = [
        (Prediction(task="report", text="Mild cardiomegaly. No pleural effusion."),
         "Mild cardiomegaly. No pleural effusion."),
        (Prediction(task="report", text="Small right pneumothorax."), "Small right pneumothorax."),
        (Prediction(task="report", valid=False, reason="garbled"), "Left lower lobe atelectasis."),
        (Prediction(task="report", text="Lungs are clear."), "   "),  # empty reference: left out
    ]
    for pred, ref in cases:
        m.update(pred, {"report": ref})
    with pytest.raises(ValueError, match="missing field 'report'"):
        m.update(cases[0][0], {"text": "x"})
    return m.compute()


@pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs Java")
def test_report_metric_end_to_end():
    r = _end_to_end(meteor=False)
    assert (r["n"], r["n_invalid"], r["n_empty_reference"], r["n_empty_prediction"]) == (3, 1, 1, 0)
    assert r["rouge_l"] == pytest.approx(2 / 3)  # 1, 1 and 0 for the empty hypothesis
    assert r["bleu_per_sample_lowercase"] == pytest.approx(2 / 3)
    # corpus BLEU-1: the 8 hypothesis tokens all match; 12 reference tokens -> brevity penalty exp(1 - 12/8)
    assert r["bleu_1"] == pytest.approx(math.exp(1 - 12 / 8), rel=1e-6)
    assert r["cider"] > 0 and math.isnan(r["meteor"])
    # clinical: generated {Cardiomegaly, Pneumothorax}, reference {Cardiomegaly, Pneumothorax, Atelectasis}
    assert r["f1_14_micro"] == pytest.approx(4 / 5)
    assert r["f1_5_micro"] == pytest.approx(2 / 3) and r["f1_5_macro"] == pytest.approx(0.5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_report_metric_with_meteor():
    r = _end_to_end(meteor=True)
    assert 0.4 < r["meteor"] < 1  # two identical reports and one empty one


def test_report_metric_all_invalid_and_empty():
    m = ReportMetric(coco=False)
    m.update(Prediction(task="report", valid=False), {"report": "No acute disease."})
    m.update(Prediction(task="report", text=""), {"report": "Clear lungs."})
    r = m.compute()
    assert (r["n"], r["n_invalid"], r["n_empty_prediction"]) == (2, 1, 1)
    assert r["bleu_per_sample_lowercase"] == 0.0 and r["sacrebleu"] == 0.0
    assert r["f1_14_micro"] == 0.0  # the references say No Finding; the empty reports say nothing
    m.reset()
    m.update(Prediction(task="report", text="x"), {"report": ""})
    r = m.compute()
    assert r["n"] == 0 and r["n_empty_reference"] == 1 and math.isnan(r["f1_14_micro"])
    with pytest.raises(ValueError, match="must be a string"):
        m.update(Prediction(task="report", text="x"), {"report": ["x"]})
