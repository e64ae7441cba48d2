from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from task_studies import MALFORMED, covid_study, lungs_mask, provide_metric, tb_study, text_only_study

from cxrvlm.tasks import _text, vqa


def _by_template(study, seed=0):
    out: dict[str, list] = {}
    for e in vqa.format(study, random.Random(seed)):
        out.setdefault(e.target["template"], []).append(e)
    return out


def test_tb_label_questions_are_balanced_over_a_source():
    answers = Counter()
    for i in range(10):
        for e in vqa.format(tb_study(i, positive=i % 2 == 0), random.Random(i)):
            assert e.target["closed"] and e.target["candidates"] == ["yes", "no"]
            answers[(e.prefix, e.suffix)] += 1
    q = "Is there evidence of tuberculosis in this X-ray?"
    assert answers[(q, "yes")] == 5 and answers[(q, "no")] == 5
    assert answers[("Is this chest X-ray normal?", "yes")] == 5


def test_label_normal_and_choice_questions_follow_the_labels():
    t = _by_template(covid_study())
    yes = [e for e in t["label"] if e.suffix == "yes"]
    no = [e for e in t["label"] if e.suffix == "no"]
    assert len(yes) == 1 and len(no) == 1
    assert any(x in yes[0].prefix for x in ("covid-19", "viral pneumonia", "pneumonia"))
    assert any(x in no[0].prefix for x in ("bacterial pneumonia", "fungal pneumonia", "pneumocystis"))
    assert [e.suffix for e in t["normal"]] == ["no"]
    choice = t["choice"][0]
    assert choice.suffix in ("covid-19", "viral pneumonia", "pneumonia")
    assert choice.target["candidates"][0] in choice.prefix and choice.target["candidates"][1] in choice.prefix


def test_source_specific_terms_are_not_asked_about():
    s = covid_study()
    s.labels["Streptococcus"] = 1.0  # a pathogen a source records only when positive
    for seed in range(20):
        assert not any("streptococcus" in e.prefix for e in vqa.format(s, random.Random(seed)))


def test_view_questions():
    t = _by_template(covid_study())
    assert sorted((e.images[0], e.suffix) for e in t["view"]) == [("/data/covid/f.png", "pa"),
                                                                  ("/data/covid/l.png", "lateral")]
    assert t["view"][0].prefix == "What is the projection of this radiograph?"
    assert t["view"][0].target["candidates"] == ["pa", "ap", "lateral"]


def test_lung_size_from_mask_before_boxes():
    t = _by_template(covid_study())
    assert [e.suffix for e in t["lung_size"]] == ["left"]  # mask: left blob 26 px wide vs right 20
    s = covid_study()
    s.views[0].masks = {}
    assert [e.suffix for e in _by_template(s)["lung_size"]] == ["right"]  # boxes: 0.35 x 0.8 vs 0.35 x 0.7


def test_lung_size_needs_a_clear_difference_and_a_frontal_view():
    s = covid_study()
    s.views[0].masks = {"lungs": lungs_mask(right_width=25, left_width=26)}  # 4% apart
    s.views[0].boxes = []
    assert "lung_size" not in _by_template(s)
    s.views[0].masks = {"lungs": np.ones((60, 80), bool)}  # one blob: the lungs cannot be told apart
    assert "lung_size" not in _by_template(s)
    s.views[0].view_position = "LATERAL"
    s.views[0].masks = {"lungs": lungs_mask()}
    assert "lung_size" not in _by_template(s)


def test_lung_size_from_separate_mask_files(tmp_path):
    right, left = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
    right[5:35, 2:18], left[5:25, 22:38] = 255, 255
    Image.fromarray(right).save(tmp_path / "r.png")
    Image.fromarray(left).save(tmp_path / "l.png")
    s = covid_study()
    s.views[0].masks = {"Right Lung": str(tmp_path / "r.png"), "Left Lung": str(tmp_path / "l.png")}
    assert [e.suffix for e in _by_template(s)["lung_size"]] == ["right"]
    s.views[0].masks = {"lungs": str(tmp_path / "missing.png")}  # unreadable: falls back to the boxes
    assert [e.suffix for e in _by_template(s)["lung_size"]] == ["right"]


@pytest.mark.parametrize("name, value, level", [
    ("geographic_extent", 0.0, "none"), ("geographic_extent", 0.49, "none"), ("geographic_extent", 0.5, "mild"),
    ("geographic_extent", 2.9, "mild"), ("geographic_extent", 3.0, "moderate"), ("geographic_extent", 5.0, "severe"),
    ("opacity", 1.9, "mild"), ("opacity", 2.0, "moderate"), ("opacity", 4.0, "severe"), ("opacity", 6.0, "severe"),
])
def test_severity_bins(name, value, level):
    assert _text.severity_level(name, value) == level


def test_severity_and_change_questions():
    t = _by_template(covid_study(extent=5.5, prior_extent=2.0))
    assert [e.suffix for e in t["extent"]] == ["severe"] and [e.suffix for e in t["density"]] == ["moderate"]
    change = t["change"][0]
    assert change.prefix == ("Compared with the prior study from 12 days earlier, has the lung opacity worsened, "
                             "improved, or stayed the same?")
    assert change.suffix == "worsened" and change.images == ["/data/covid/f.png", "/data/covid/p.png"]
    assert change.meta["prior_interval_days"] == 12.0
    assert _by_template(covid_study(extent=2.0, prior_extent=4.0))["change"][0].suffix == "improved"
    assert _by_template(covid_study(extent=2.5, prior_extent=2.0))["change"][0].suffix == "stayed the same"
    assert "change" not in _by_template(covid_study(with_prior=False))
    s = covid_study()
    s.prior.scores = {}
    assert "change" not in _by_template(s)


def test_source_questions():
    src = _by_template(covid_study())["source"]
    assert [(e.prefix, e.suffix, e.target["answer"], e.target["closed"]) for e in src] == [
        ("What does the arrow point to?", "Consolidation", "consolidation", False),
        ("Is there a pleural effusion?", "No", "no", True)]
    assert src[1].target["candidates"] == ["yes", "no"] and src[0].target["candidates"] == []


def test_round_trip_every_example():
    n = 0
    for study in (covid_study(), tb_study(positive=True), tb_study(positive=False)):
        for e in vqa.format(study, random.Random(5)):
            pred = vqa.parse(e.suffix, candidates=e.target["candidates"] or None)
            assert pred.valid and pred.answer == e.target["answer"], (e.prefix, e.suffix, pred.reason)
            n += 1
    # covid 12: 2 label, normal, choice, extent, density, change, 2 view, lung size, 2 source; tb 2 + 2
    assert n == 16


@pytest.mark.parametrize("text", [*MALFORMED, "<loc0001><loc0002><loc0003><loc0004> yes", "?!..", "x" * 501])
def test_parse_malformed_is_invalid_never_raises(text):
    pred = vqa.parse(text)
    assert not pred.valid and pred.reason and pred.answer is None


def test_parse_wrong_answer_for_the_candidates():
    assert not vqa.parse("maybe", candidates=["yes", "no"]).valid
    assert vqa.parse(" Yes. ", candidates=["yes", "no"]).answer == "yes"


def test_no_examples_without_images_and_deterministic():
    assert vqa.format(text_only_study(), random.Random(0)) == []
    assert vqa.format(tb_study(path=None), random.Random(0)) == []
    a = [e.to_json() for e in vqa.format(covid_study(), random.Random(9))]
    assert a == [e.to_json() for e in vqa.format(covid_study(), random.Random(9))]


def test_metric_hook_routes_closed_and_open(monkeypatch):
    provide_metric(monkeypatch, "ClosedVQAMetric", "vqa")
    provide_metric(monkeypatch, "OpenVQAMetric", "vqa")
    m = vqa.metric()
    for e in vqa.format(covid_study(), random.Random(0)):
        wrong = e.target["template"] == "view"
        m.update(vqa.parse("ap" if wrong else e.suffix), e.target)
    out = m.compute()
    assert out["open_exact_match"] == 1.0 and out["open_n"] == 1
    views = 2  # pa answered ap (wrong), lateral answered ap (wrong)
    assert out["closed_accuracy"] == pytest.approx((out["closed_n"] - views) / out["closed_n"])


def test_every_question_the_task_asks_is_known_by_its_type_at_reading_time():
    made = [e for s in (covid_study(extent=6.0, prior_extent=2.0), tb_study()) for e in vqa.format(s, random.Random(0))]
    assert {e.target["template"] for e in made} >= {"change", "extent", "density", "view", "label", "normal"}
    for e in made:
        assert vqa.template_of(e.target["question"]) == e.target["template"], e.target["question"]
        assert vqa.template_of(e.target["question"].upper() + "  ") == e.target["template"]
    assert vqa.template_of("Which lung is larger on this image, the right or the left?") == "lung_size"
    assert vqa.template_of("Is there a pneumothorax?") == vqa.template_of("What is this?") == "source"
