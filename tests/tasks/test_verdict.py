"""One verdict: a text that contradicts the label head's calls is found out, and the report stated from the calls
contradicts nothing."""
from __future__ import annotations

import numpy as np
import pytest

from cxrvlm.metrics.memorisation import CopyGuard, CopyIndex
from cxrvlm.tasks import classify, labels, report, verdict, vqa


def _head(**probs: float) -> dict[str, float]:
    return {name: 0.02 for name in labels.LABEL_SPACE} | {"No Finding": 0.1} | {
        k.replace("_", " "): v for k, v in probs.items()}


@pytest.mark.parametrize("text, head, expected", [
    ("The lungs are clear. Impression: Normal chest radiograph.", _head(Tuberculosis=0.8),
     "the text reads normal; the reading calls tuberculosis"),
    ("No evidence of tuberculosis.", _head(Tuberculosis=0.5), "the text rules out tuberculosis; the reading calls it"),
    ("Findings consistent with pulmonary tuberculosis.", _head(Tuberculosis=0.1),
     "the text states tuberculosis; the reading does not call it (probability 0.10)"),
    ("Small left pleural effusion.", _head(), "the text states pleural effusion; the reading does not call it"),
    ("Bilateral opacities in keeping with COVID-19 pneumonia.", _head(Pneumonia=0.7),
     "the text states covid-19; the reading does not call it"),
])
def test_contradictions_name_the_fact_and_the_reading(text, head, expected):
    found = verdict.contradictions(text, head, tb_threshold=0.36)
    assert len(found) == 1 and found[0].startswith(expected)


def test_agreeing_and_uncertain_texts_contradict_nothing():
    head = _head(Tuberculosis=0.6)
    assert verdict.contradictions("Appearances are in keeping with pulmonary tuberculosis.", head, 0.36) == []
    assert verdict.contradictions("Possible tuberculosis; clinical correlation.", _head(), 0.36) == []
    assert verdict.contradictions("Heart size normal. No effusion.", _head(), 0.36) == []


def test_a_contradicting_report_is_replaced_by_the_one_stated_from_the_calls():
    head = _head(**{"COVID-19": 0.9, "Viral_Pneumonia": 0.8, "Pneumonia": 0.85})
    given, found = report.check_with_head("Findings: The lungs are clear. Impression: Normal.", head, 0.36)
    assert found and "covid-19 pneumonia" in given.lower() and "viral" not in given.lower()
    same, none = report.check_with_head(given, head, 0.36)
    assert same == given and none == []


def test_the_stated_report_never_contradicts_its_calls():
    rng = np.random.default_rng(0)
    for _ in range(200):
        head = {name: float(p) for name, p in zip(labels.LABEL_SPACE, rng.random(len(labels.LABEL_SPACE)) ** 3)}
        threshold = float(rng.uniform(0.2, 0.6))
        text = report.stated_report(labels.called(head, threshold))
        assert verdict.contradictions(text, head, threshold) == [], (text, labels.called(head, threshold))


def test_yes_no_questions_the_head_settles_are_answered_as_the_verdict_is():
    head = _head(Tuberculosis=0.4, **{"No_Finding": 0.7})
    tb = vqa.head_answer("Is there evidence of tuberculosis in this X-ray?", head, 0.36)
    assert (tb["answer"], tb["probability"], tb["source"]) == ("yes", 0.4, "label head")  # at the operating point
    assert vqa.head_answer("Is this chest X-ray normal?", head, 0.36)["answer"] == "no"  # TB is called
    assert vqa.head_answer("Is this chest X-ray normal?", head, 0.5)["answer"] == "yes"
    assert vqa.head_answer("Is there evidence of edema in this X-ray?", head, 0.36)["probability"] == 0.98
    assert vqa.head_answer("What is the projection of this radiograph?", head, 0.36) is None
    # the same facts asked in other words get the same answers
    for asked in ("Is there a pleural effusion?", "are there any signs of pleural effusion on this film?",
                  "Is there evidence of pleural effusion in the chest X-ray"):
        assert vqa.head_answer(asked, head, 0.36)["answer"] == "no", asked
    assert vqa.head_answer("Is there tuberculosis?", head, 0.36)["answer"] == "yes"
    assert vqa.head_answer("Is there a mass in the left apex?", head, 0.36) is None  # a place the head cannot tell
    assert vqa.head_answer("Is there no finding?", head, 0.36) is None


def test_the_one_line_verdict_says_abnormal_not_tb():
    assert classify.verdict(_head(Tuberculosis=0.5, Edema=0.9), "tuberculosis", 0.36) == {
        "label": "tuberculosis", "called": ["tuberculosis", "edema"], "source": "label head"}
    assert classify.verdict(_head(**{"COVID-19": 0.8}), "normal", 0.36)["called"] == [
        "covid-19", "viral pneumonia", "pneumonia"]
    assert classify.verdict(_head(**{"COVID-19": 0.8}), "normal", 0.36)["label"] == "abnormal, not tuberculosis"
    assert classify.verdict(_head(**{"No_Finding": 0.9}), "normal", 0.36)["label"] == "no finding called"
    assert classify.verdict(None, "normal", 0.36) == {"label": "not tuberculosis", "called": [], "source": "decoder"}


def test_a_report_of_one_film_may_not_compare_with_a_prior_nobody_gave():
    head = _head(**{"No_Finding": 0.9})
    text = "Findings: The lungs are clear. Impression: Unchanged from the prior study."
    given, found = report.check_with_head(text, head, 0.36, prior_given=False)
    assert found == ["the text compares with a prior study; none was given"] and "prior" not in given.lower()
    assert report.check_with_head(text, head, 0.36, prior_given=True) == (text, [])


def test_a_report_copying_one_training_patients_words_is_replaced_without_repeating_them():
    patient = ("Findings: a 54 year old man from the night shift with fever since tuesday had a cavity in the right "
               "upper lobe. Impression: Findings consistent with pulmonary tuberculosis.")
    guard = CopyGuard.from_index(CopyIndex([patient, "Findings: The lungs are clear. Impression: Normal."]))
    head = _head(Tuberculosis=0.8)
    given, found = report.check_with_head(patient, head, 0.36, guard=guard)
    assert len(found) == 1 and "copies a run of 12" in found[0] and "night shift" not in found[0]
    assert "night shift" not in given and "tuberculosis" in given.lower()
    assert report.check_with_head(patient, head, 0.36) == (patient, [])  # no guard: not checked for copies
    agreeing = "Findings: Appearances are in keeping with pulmonary tuberculosis. Impression: TB."
    assert report.check_with_head(agreeing, head, 0.36, guard=guard) == (agreeing, [])


def test_evaluation_answers_the_questions_the_head_settles_as_a_reading_does():
    from cxrvlm.examples import Example

    def asked(question: str, candidates=("yes", "no")) -> Example:
        return Example("vqa", ["f.png"], question, "yes", "s", "p", "nih",
                       {"question": question, "candidates": list(candidates), "closed": True, "answer": "yes"})

    head = _head(Tuberculosis=0.4, **{"Pleural_Effusion": 0.7})
    assert vqa.from_head(asked("Is there evidence of tuberculosis in this X-ray?"), head, 0.36) == {"yes": 1.0,
                                                                                                     "no": 0.0}
    assert vqa.from_head(asked("Is there evidence of tuberculosis in this X-ray?"), head, 0.5)["no"] == 1.0
    assert vqa.from_head(asked("Is there a pleural effusion?"), head, 0.36)["yes"] == 1.0
    assert vqa.from_head(asked("Is there a mass in the left apex?"), head, 0.36) is None  # the decoder answers
    assert vqa.from_head(asked("What is the projection of this radiograph?", ("pa", "ap")), head, 0.36) is None
