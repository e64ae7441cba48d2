from __future__ import annotations

import random

import pytest
from task_studies import MALFORMED, chexpert_study, covid_study, provide_metric, tb_study, text_only_study

from cxrvlm.records import Box, Study, View
from cxrvlm.tasks import report


def _by_inputs(study, seed=0):
    return {e.meta["inputs"]: e for e in report.format(study, random.Random(seed))}


def test_source_report_single_image():
    e = _by_inputs(chexpert_study())["single"]
    assert e.prefix == "Generate a medical report for the X-ray image provided"
    assert e.suffix == "Findings: Enlarged heart. Two nodules. Impression: Cardiomegaly."
    assert e.meta == {**e.meta, "report_kind": "report", "templated": False}
    assert e.target["report"] == e.suffix and "cardiomegaly" in e.target["positives"]


def test_case_notes_multi_view_and_multi_study():
    ex = _by_inputs(covid_study(interval=12))
    assert set(ex) == {"single", "multi_view", "multi_study"}
    assert ex["single"].prefix == "Write the case notes for the X-ray image provided"
    assert ex["single"].meta["report_kind"] == "case_notes" and ex["single"].target["kind"] == "case_notes"
    assert ex["multi_view"].images == ["/data/covid/f.png", "/data/covid/l.png"]
    assert "frontal and lateral" in ex["multi_view"].prefix
    study = ex["multi_study"]
    assert study.images == ["/data/covid/f.png", "/data/covid/p.png"]
    assert "compared with the prior study from 12 days earlier" in study.prefix
    assert study.prefix == report.prompt("case_notes", prior_interval_days=12)
    assert study.meta["prior_interval_days"] == 12 and study.meta["prior_study_id"] == "covid:1:day0"
    assert {e.suffix for e in ex.values()} == {"Bilateral opacities."}  # case notes carry no section header


def test_interval_wording():
    assert "from the same day" in report.prompt(prior_interval_days=0.2)
    assert "from 1 day earlier" in report.prompt(prior_interval_days=1)
    with pytest.raises(ValueError):
        report.prompt("poem")


def test_templated_tb_reports():
    pos = _by_inputs(tb_study(positive=True))["single"]
    neg = _by_inputs(tb_study(positive=False))["single"]
    for e in (pos, neg):
        assert e.meta["templated"] is True and e.target["kind"] == "templated"
        assert e.prefix == "Generate a medical report for the X-ray image provided"
        assert e.suffix.startswith("Findings: ") and " Impression: " in e.suffix
    assert "pulmonary tuberculosis" in pos.suffix and "tuberculosis" not in neg.suffix
    assert any(x in neg.suffix for x in ("Normal chest radiograph.", "No acute cardiopulmonary abnormality."))
    phrasings = {_by_inputs(tb_study(positive=True), seed)["single"].suffix for seed in range(30)}
    assert len(phrasings) > 1  # rng picks among phrasings


def test_templated_report_states_only_the_data():
    s = covid_study(notes=None, with_prior=False)
    s.views[0].boxes.append(Box("Pneumonia", 0.6, 0.5, 0.8, 0.7))  # on the image's right = patient's left
    text = _by_inputs(s)["single"].suffix
    assert "covid-19 pneumonia" in text and "pneumonia in the left hemithorax" in text
    assert "severe in extent (geographic extent 5.5 of 8)" in text and "moderate in density (opacity 3.0 of 6)" in text
    only_negative = Study("n", "p", "x", "l", views=[View("v", path="/v.png")], labels={"Pneumothorax": 0.0})
    assert _by_inputs(only_negative)["single"].suffix == (
        "Findings: No radiographic evidence of pneumothorax. Impression: No radiographic evidence of pneumothorax.")
    unknown = Study("u", "p", "x", "l", views=[View("v", path="/v.png")], labels={"Pneumothorax": float("nan")})
    assert report.format(unknown, random.Random(0)) == []


def test_templated_multi_study_only_with_a_known_change():
    ex = _by_inputs(covid_study(notes=None, extent=5.5, prior_extent=2.0))
    assert ex["multi_study"].suffix.endswith("Compared with the prior study, the lung opacity has worsened.")
    assert ex["multi_study"].target["report"] == ex["multi_study"].suffix
    assert "worsened" not in ex["single"].suffix
    s = covid_study(notes=None)
    s.prior.scores = {}
    assert "multi_study" not in _by_inputs(s)


def test_round_trip_every_example():
    for study in (covid_study(), chexpert_study(), tb_study(), covid_study(notes=None)):
        for e in report.format(study, random.Random(0)):
            pred = report.parse(e.suffix)
            assert pred.valid and pred.text == e.target["report"]
            assert pred.extra["findings"] and "Findings:" not in pred.extra["findings"]
            assert e.target["kind"] == "case_notes" or e.suffix.startswith("Findings: ")


@pytest.mark.parametrize("text", [*MALFORMED, "Findings: <loc0001><loc0002> clear", "a" * 20_001])
def test_parse_malformed_is_invalid_never_raises(text):
    pred = report.parse(text)
    assert not pred.valid and pred.reason


def test_no_examples_without_images_and_deterministic():
    assert report.format(text_only_study(), random.Random(0)) == []
    assert report.format(tb_study(path=None), random.Random(0)) == []
    a = [e.to_json() for e in report.format(covid_study(notes=None), random.Random(4))]
    assert a == [e.to_json() for e in report.format(covid_study(notes=None), random.Random(4))]


def test_metric_hook(monkeypatch):
    provide_metric(monkeypatch, "ReportMetric", "report")
    m = report.metric()
    for e in report.format(chexpert_study(), random.Random(0)):
        m.update(report.parse(e.suffix), e.target)
    bleu = {k: v for k, v in m.compute().items() if "bleu" in k.lower()}
    assert bleu and max(bleu.values()) == pytest.approx(1.0, abs=1e-3)
