from __future__ import annotations

import random

import pytest
from task_studies import MALFORMED, chexpert_study, covid_study, provide_metric, tb_study, text_only_study

from cxrvlm.tasks import ground
from cxrvlm.tokens.loc import encode_box

Q = 1 / 1023


def test_one_example_per_unambiguous_box():
    exs = ground.format(covid_study(), random.Random(0))
    assert [e.prefix for e in exs] == ["locate the right lung", "locate the left lung"]
    assert exs[0].suffix == encode_box(0.1, 0.1, 0.45, 0.9)
    assert exs[0].target == {"label": "right lung", "box": [0.1, 0.1, 0.45, 0.9]}
    # two "lung lesion" boxes on one view: the phrase does not say which, so only cardiomegaly is grounded
    assert [e.target["label"] for e in ground.format(chexpert_study(), random.Random(0))] == ["cardiomegaly"]


def test_round_trip_within_quantisation():
    for study in (covid_study(), chexpert_study()):
        for e in ground.format(study, random.Random(0)):
            pred = ground.parse(e.suffix)
            assert pred.valid, pred.reason
            assert pred.boxes[0][1] == pytest.approx(e.target["box"], abs=Q / 2 + 1e-9)


def test_parse_accepts_echoed_phrase_and_gives_pixels():
    pred = ground.parse("<loc0000><loc0000><loc1023><loc1023> right lung", image_size=(10, 20))
    assert pred.valid and pred.label == "right lung"
    assert pred.extra["box_px"] == pytest.approx((0.0, 0.0, 20.0, 10.0))


@pytest.mark.parametrize("text", [*MALFORMED, "right lung", "<loc0001><loc0002><loc0003>",
                                  "<loc0001><loc0002><loc0003><loc0004><loc0005>",
                                  "<loc0900><loc0100><loc0200><loc0300>",
                                  "<loc0001><loc0002><loc0003><loc0004> a ; <loc0001><loc0002><loc0003><loc0004> b"])
def test_parse_malformed_is_invalid_never_raises(text):
    pred = ground.parse(text)
    assert not pred.valid and pred.reason and pred.boxes == []


def test_no_examples_without_boxes_or_images():
    assert ground.format(tb_study(), random.Random(0)) == []
    assert ground.format(text_only_study(), random.Random(0)) == []


def test_deterministic_and_prompt():
    assert [e.to_json() for e in ground.format(covid_study(), random.Random(1))] == \
        [e.to_json() for e in ground.format(covid_study(), random.Random(2))]
    assert ground.prompt("Left Lung") == "locate the left lung"
    with pytest.raises(ValueError):
        ground.prompt("  ")


def test_metric_hook(monkeypatch):
    provide_metric(monkeypatch, "GroundingMetric", "grounding")
    m = ground.metric()
    exs = ground.format(covid_study(), random.Random(0))
    m.update(ground.parse(exs[0].suffix), exs[0].target)
    m.update(ground.parse("<loc0000><loc0000><loc0010><loc0010>"), exs[1].target)  # far off
    out = m.compute()
    accuracy = next(v for k, v in out.items() if "acc" in k.lower())
    assert accuracy == pytest.approx(0.5)
