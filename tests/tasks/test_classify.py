from __future__ import annotations

import json
import random

import pytest
from task_studies import MALFORMED, chexpert_study, covid_study, provide_metric, tb_study, text_only_study

from cxrvlm.records import Study, View
from cxrvlm.tasks import classify
from cxrvlm.tasks.base import get_task


def _study(labels: dict[str, float]) -> Study:
    return Study("s", "p", "x", "l", views=[View("v", path="/v.png")], labels=labels)


def test_registered():
    assert get_task("classify") is classify.TASK and classify.TASK.parse is classify.parse


def test_tb_positive_and_negative():
    pos = {e.target["kind"]: e for e in classify.format(tb_study(positive=True), random.Random(0))}
    neg = {e.target["kind"]: e for e in classify.format(tb_study(positive=False), random.Random(0))}
    assert pos["tb"].prefix == "What is the diagnosis of the X-ray image?" == classify.prompt("tuberculosis")
    assert (pos["tb"].suffix, neg["tb"].suffix) == ("tuberculosis", "normal")
    assert pos["tb"].target["candidates"] == ["normal", "tuberculosis"]
    assert (pos["finding"].suffix, neg["finding"].suffix) == ("tuberculosis", "no finding")
    assert pos["tb"].images == ["/data/tb/img.png"]
    json.dumps([e.to_json() for e in pos.values()])  # JSON-able


def test_tb_negative_but_sick_has_no_normal_answer():
    exs = classify.format(_study({"Tuberculosis": 0.0, "Pneumonia": 1.0}), random.Random(0))
    assert [e.target["kind"] for e in exs] == ["finding"]
    assert exs[0].suffix == "pneumonia"


@pytest.mark.parametrize("labels, asked", [
    ({"Tuberculosis": 0.0, "Pneumonia": 1.0}, True),
    ({"COVID-19": 1.0, "Viral Pneumonia": 1.0, "Pneumonia": 1.0}, True),  # TB unknown
    ({"Tuberculosis": 1.0, "Pneumonia": 0.0}, False),
    ({"Tuberculosis": 0.0, "No Finding": 1.0}, False),
])
def test_other_disease_films_get_the_tb_question(labels, asked):
    made = [classify.other_disease_case(e) for e in classify.format(_study(labels), random.Random(0))]
    made = [c for c in made if c is not None]
    assert len(made) == int(asked)
    if asked:
        c = made[0]
        assert (c.prefix, c.target["candidates"], c.target["kind"]) == (classify.prompt("tuberculosis"),
                                                                         ["normal", "tuberculosis"], "other_disease")
        assert "label" not in c.target and c.images == ["/v.png"] and c.study_id == "s"
        assert not classify.TASK.screening_case(c) and classify.TASK.other_disease_case is classify.other_disease_case


@pytest.mark.parametrize("labels, answer", [
    ({"COVID-19": 1.0, "Viral Pneumonia": 1.0, "Pneumonia": 1.0, "Bacterial Pneumonia": 0.0}, "covid-19"),
    ({"SARS": 1.0, "Viral Pneumonia": 1.0, "Pneumonia": 1.0}, "viral pneumonia"),
    ({"Streptococcus": 1.0}, "bacterial pneumonia"),
    ({"Pneumocystis": 1.0, "Fungal Pneumonia": 1.0, "Pneumonia": 1.0}, "fungal pneumonia"),
    ({"COVID-19": 1.0, "ARDS": 1.0, "Pneumonia": 1.0}, "covid-19"),
    ({"Pneumonia": 1.0, "No Finding": 0.0}, "pneumonia"),
    ({"No Finding": 1.0, "COVID-19": 0.0}, "no finding"),
    ({"COVID-19": 1.0, "Streptococcus": 1.0}, None),  # co-infection: no single answer
    ({"Cardiomegaly": 1.0, "No Finding": 0.0}, None),  # nothing in the diagnosis set
    ({"COVID-19": float("nan")}, None),
])
def test_finding_answer(labels, answer):
    assert classify.finding_answer(_study(labels)) == answer
    exs = [e for e in classify.format(_study(labels), random.Random(0)) if e.target["kind"] == "finding"]
    assert [e.suffix for e in exs] == ([answer] if answer else [])
    for e in exs:
        assert e.target["candidates"] == list(classify.FINDING_CANDIDATES)
        assert e.prefix == classify.prompt("finding")


def test_prompt_is_the_same_for_every_study():
    prefixes = {e.prefix for s in (covid_study(), tb_study(), _study({"Streptococcus": 1.0}))
                for e in classify.format(s, random.Random(0)) if e.target["kind"] == "finding"}
    assert len(prefixes) == 1 and "Options: no finding, tuberculosis, covid-19" in prefixes.pop()


def test_round_trip_every_example():
    studies = [tb_study(positive=True), tb_study(positive=False), covid_study(), _study({"Streptococcus": 1.0}),
               _study({"No Finding": 1.0})]
    n = 0
    for s in studies:
        for e in classify.format(s, random.Random(1)):
            for cands in (e.target["candidates"], None):
                pred = classify.parse(e.suffix, candidates=cands)
                assert pred.valid and pred.label == e.target["label"], (e.suffix, pred.reason)
            n += 1
    assert n == 7


def test_parse_normalises_case_whitespace_punctuation():
    assert classify.parse("  Tuberculosis.\n").label == "tuberculosis"
    assert classify.parse("COVID-19!").label == "covid-19"
    assert classify.parse("No  Finding", candidates=classify.FINDING_CANDIDATES).label == "no finding"


@pytest.mark.parametrize("text", [*MALFORMED, "pneumothorax", "the diagnosis is tuberculosis", "<loc0001>"])
def test_parse_malformed_is_invalid_never_raises(text):
    pred = classify.parse(text, candidates=["normal", "tuberculosis"])
    assert not pred.valid and pred.reason and pred.label is None


def test_parse_wrong_label_for_the_prompt():
    pred = classify.parse("covid-19", candidates=classify.TB_CANDIDATES)
    assert not pred.valid and "not one of the candidates" in pred.reason
    assert classify.parse(None).valid is False  # type: ignore[arg-type]


def test_no_examples_without_images():
    assert classify.format(text_only_study(), random.Random(0)) == []
    assert classify.format(tb_study(path=None), random.Random(0)) == []
    assert classify.format(chexpert_study(), random.Random(0)) == []  # no diagnosis, no TB label


def test_deterministic():
    a = [e.to_json() for e in classify.format(covid_study(), random.Random(3))]
    b = [e.to_json() for e in classify.format(covid_study(), random.Random(3))]
    assert a == b and a


def test_prompt_and_answer_set():
    with pytest.raises(ValueError, match="unknown kind"):
        classify.prompt("fracture")
    assert classify.answer_set("tuberculosis") == ["normal", "tuberculosis"]
    assert classify.answer_set("finding")[0] == "no finding" and len(classify.answer_set("finding")) == 7


def test_metric_hook_scores_each_kind(monkeypatch):
    provide_metric(monkeypatch, "ClassificationMetric", "classification")
    m = classify.ClassifyMetric(n_boot=20)
    for s in (tb_study(positive=True), tb_study(positive=False), covid_study()):
        for e in classify.format(s, random.Random(0)):
            m.update(classify.parse(e.suffix), e.target)
    wrong = classify.format(tb_study(positive=True), random.Random(0))[0]
    m.update(classify.parse("normal"), wrong.target)
    out = m.compute()
    assert out["tb_accuracy"] == pytest.approx(2 / 3) and out["finding_accuracy"] == 1.0
    assert out["tb_n"] == 3 and out["finding_n"] == 3
