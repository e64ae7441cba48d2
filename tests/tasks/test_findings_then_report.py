from __future__ import annotations

import random

import pytest
from task_studies import MALFORMED, chexpert_study, covid_study, provide_metric, tb_study, text_only_study

from cxrvlm.records import Report
from cxrvlm.tasks import findings_then_report as ftr


def test_two_steps_with_the_conversation_in_step_two():
    one, two = ftr.format(chexpert_study(), random.Random(0))
    assert (one.meta["step"], two.meta["step"]) == (1, 2)
    assert one.prefix.startswith("Which of the following findings are present in this chest X-ray? Options: ")
    assert one.target["candidates"][:3] == ["enlarged cardiomediastinum", "cardiomegaly", "lung opacity"]
    assert one.suffix == "cardiomegaly, lung lesion"
    assert two.prefix == (f"{one.prefix}\n{one.suffix}\n"
                          "Based on the previous conversation, provide a description of the findings.")
    assert two.prefix == ftr.report_prompt(one.target["candidates"], one.suffix)
    assert two.suffix == "Findings: Enlarged heart. Two nodules. Impression: Cardiomegaly."
    assert one.images == two.images == ["/data/c.png"]


def test_options_are_whole_families_so_they_do_not_hint_at_the_answer():
    one, _ = ftr.format(covid_study(), random.Random(0))
    assert one.target["candidates"] == ["covid-19", "viral pneumonia", "bacterial pneumonia", "fungal pneumonia",
                                        "pneumonia"]
    assert one.suffix == "covid-19, viral pneumonia, pneumonia"
    s = covid_study()
    s.labels["Streptococcus"] = 1.0  # recorded only when positive: never an option
    assert "streptococcus" not in ftr.format(s, random.Random(0))[0].prefix
    assert ftr.format(chexpert_study(all_known=False), random.Random(0)) == []  # a CheXpert label unknown


def test_none_answer():
    s = covid_study()
    s.labels = {k: 0.0 for k in s.labels}
    one, _ = ftr.format(s, random.Random(0))
    assert one.suffix == "none" and one.target["labels"] == []
    assert ftr.parse("None", step=1).labels == [] and ftr.parse("None", step=1).valid


def test_only_real_reports_with_labels():
    assert ftr.format(tb_study(), random.Random(0)) == []  # templated report
    s = chexpert_study()
    s.report = Report(findings="x", kind="templated")
    assert ftr.format(s, random.Random(0)) == []
    assert ftr.format(text_only_study(), random.Random(0)) == []  # no image


def test_round_trip_both_steps():
    for study in (chexpert_study(), covid_study()):
        one, two = ftr.format(study, random.Random(0))
        p1 = ftr.parse(one.suffix, step=1, candidates=one.target["candidates"])
        assert p1.valid and p1.labels == one.target["labels"]
        assert ftr.parse(one.suffix).labels == one.target["labels"]  # step read from the text
        p2 = ftr.parse(two.suffix, step=2)
        assert p2.valid and p2.text == two.target["report"]
        assert ftr.parse(two.suffix).extra["step"] == 2


@pytest.mark.parametrize("text", [*MALFORMED, "cardiomegaly, , lung lesion", "cardiomegaly, banana",
                                  "none, cardiomegaly"])
def test_step1_malformed_is_invalid_never_raises(text):
    pred = ftr.parse(text, step=1, candidates=["cardiomegaly", "lung lesion"])
    assert not pred.valid and pred.reason


@pytest.mark.parametrize("text", [*MALFORMED, "Findings: <seg001> clear"])
def test_step2_malformed_is_invalid(text):
    pred = ftr.parse(text, step=2)
    assert not pred.valid and pred.reason
    assert not ftr.parse("fine", step=3).valid


def test_deterministic():
    a = [e.to_json() for e in ftr.format(covid_study(), random.Random(1))]
    assert a == [e.to_json() for e in ftr.format(covid_study(), random.Random(2))] and len(a) == 2


def test_metric_step1_f1():
    m = ftr.metric()
    one, _ = ftr.format(chexpert_study(), random.Random(0))
    m.update(ftr.parse("cardiomegaly, pneumothorax", step=1), one.target)  # 1 TP, 1 FP, 1 FN
    out = m.compute()
    assert out["findings_precision"] == 0.5 and out["findings_recall"] == 0.5 and out["findings_f1"] == 0.5
    m.update(ftr.parse("banana", step=1, candidates=one.target["candidates"]), one.target)  # invalid: 2 FN
    out = m.compute()
    assert out["findings_recall"] == 0.25 and out["findings_invalid_rate"] == 0.5


def test_metric_step2_report(monkeypatch):
    provide_metric(monkeypatch, "ReportMetric", "report")
    m = ftr.metric()
    _, two = ftr.format(chexpert_study(), random.Random(0))
    m.update(ftr.parse(two.suffix, step=2), two.target)
    bleu = {k: v for k, v in m.compute().items() if "bleu" in k.lower()}
    assert bleu and max(bleu.values()) == pytest.approx(1.0, abs=1e-3)


def test_step1_stated_from_the_label_head_in_option_order():
    one, two = ftr.format(covid_study(), random.Random(0))
    head = {"Tuberculosis": 0.3, "COVID-19": 0.1, "Viral Pneumonia": 0.2, "Bacterial Pneumonia": 0.8,
            "Fungal Pneumonia": 0.1, "Pneumonia": 0.3, "No Finding": 0.1}
    assert "tuberculosis" not in one.target["candidates"]  # the study does not settle TB: not offered
    stated = ftr.text_from_head(one, head, tb_threshold=0.25)
    assert stated == "bacterial pneumonia, pneumonia"  # the broader diagnosis with it
    assert ftr.parse(stated, step=1, candidates=one.target["candidates"]).labels == ["bacterial pneumonia",
                                                                                     "pneumonia"]
    assert ftr.text_from_head(one, head | {"Bacterial Pneumonia": 0.4}, 0.25) == "none"
    assert ftr.text_from_head(two, head, 0.25) is None  # the report is the decoder's
    assert ftr.text_from_head(one, {"COVID-19": 0.9}, 0.25) is None  # options the head does not have


def test_metric_reports_the_majority_answer_baseline():
    m = ftr.metric(fast=True)
    for truth, said in ((["covid-19"], "covid-19"), (["covid-19"], "none"), (["pneumonia"], "pneumonia")):
        m.update(ftr.parse(said, step=1), {"step": 1, "labels": truth, "candidates": ["covid-19", "pneumonia"]})
    out = m.compute()
    assert out["findings_f1"] == pytest.approx(0.8)  # 2 TP, 0 FP, 1 FN
    assert out["findings_majority_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # "covid-19" for all: 2 TP 1 FP 1 FN
