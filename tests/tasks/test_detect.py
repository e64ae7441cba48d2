from __future__ import annotations

import random

import pytest
from task_studies import MALFORMED, chexpert_study, covid_study, provide_metric, tb_study, text_only_study

from cxrvlm.tasks import detect
from cxrvlm.tokens.loc import encode_box

Q = 1 / 1023  # one location bin


def _no_absent(study):
    """An example made with an rng that adds no absent label."""
    for seed in range(50):
        ex = detect.format(study, random.Random(seed))
        if ex and ex[0].target["absent"] is None:
            return ex[0]
    raise AssertionError("no seed without an absent label")


def _with_absent(study):
    for seed in range(50):
        ex = detect.format(study, random.Random(seed))
        if ex and ex[0].target["absent"] is not None:
            return ex[0]
    raise AssertionError("no seed with an absent label")


def test_paligemma_format_exact():
    e = _no_absent(covid_study())
    assert e.prefix == "detect right lung ; left lung" == detect.prompt(["Right Lung", "left lung"])
    assert e.suffix == (f"{encode_box(0.1, 0.1, 0.45, 0.9)} right lung ; {encode_box(0.55, 0.1, 0.9, 0.8)} left lung")
    assert e.suffix.startswith("<loc0102><loc0102><loc0921><loc0460> right lung")  # y1 x1 y2 x2
    assert e.images == ["/data/covid/f.png"]


def test_round_trip_within_quantisation():
    for study in (covid_study(), chexpert_study()):
        for seed in range(6):
            for e in detect.format(study, random.Random(seed)):
                pred = detect.parse(e.suffix, labels=e.target["labels"])
                assert pred.valid, pred.reason
                assert [lab for lab, _ in pred.boxes] == [b["label"] for b in e.target["boxes"]]
                for (_, got), want in zip(pred.boxes, e.target["boxes"]):
                    assert got == pytest.approx(want["box"], abs=Q / 2 + 1e-9)


def test_several_boxes_of_one_label_follow_prompt_order():
    e = _no_absent(chexpert_study())
    assert e.prefix == "detect lung lesion ; cardiomegaly"
    assert [b["label"] for b in e.target["boxes"]] == ["lung lesion", "lung lesion", "cardiomegaly"]
    assert e.suffix.count(" ; ") == 2


def test_absent_label_is_a_known_negative_answered_by_nothing():
    e = _with_absent(chexpert_study())
    absent = e.target["absent"]
    assert absent in e.prefix and absent not in e.suffix
    assert absent in e.target["labels"] and absent not in [b["label"] for b in e.target["boxes"]]
    assert absent not in ("cardiomegaly", "lung lesion", "no finding")
    # covid's negatives are diagnoses by cause, never asked for as regions
    assert all(detect.format(covid_study(), random.Random(s))[0].target["absent"] is None for s in range(20))


def test_no_examples_without_boxes_or_images():
    assert detect.format(tb_study(), random.Random(0)) == []
    assert detect.format(text_only_study(), random.Random(0)) == []


def test_deterministic():
    runs = [[e.to_json() for e in detect.format(chexpert_study(), random.Random(7))] for _ in range(2)]
    assert runs[0] == runs[1] and runs[0]


def test_parse_paligemma_spacing_and_pixels():
    text = "<loc0000><loc0000><loc1023><loc0511>right lung;<loc0100><loc0600><loc0900><loc1023> Left Lung"
    pred = detect.parse(text, image_size=(100, 200))
    assert pred.valid and pred.labels == ["right lung", "left lung"]
    assert pred.boxes[0][1] == pytest.approx((0.0, 0.0, 511 / 1023, 1.0))
    assert pred.extra["boxes_px"][0][1] == pytest.approx((0.0, 0.0, 200 * 511 / 1023, 100.0))


@pytest.mark.parametrize("text", [*MALFORMED, "right lung", "<loc0001><loc0002><loc0003><loc0004>",
                                  "<loc0500><loc0100><loc0400><loc0200> inverted"])
def test_parse_malformed_is_invalid_never_raises(text):
    pred = detect.parse(text)
    assert not pred.valid and pred.reason
    assert pred.boxes == []


def test_parse_keeps_good_objects_and_reports_bad_ones():
    good = f"{encode_box(0.1, 0.1, 0.4, 0.9)} right lung"
    pred = detect.parse(f"{good} ; <loc0010><loc0020> left lung ; {encode_box(0.5, 0.1, 0.9, 0.9)} heart",
                        labels=["right lung", "left lung"])
    assert not pred.valid and "2 malformed" in pred.reason
    assert pred.labels == ["right lung"]
    reasons = [m["reason"] for m in pred.extra["malformed"]]
    assert any("2 location tokens" in r for r in reasons) and any("not asked for" in r for r in reasons)


def test_prompt_rejects_empty():
    with pytest.raises(ValueError):
        detect.prompt([])


def test_metric_hook(monkeypatch):
    provide_metric(monkeypatch, "DetectionMetric", "detection")
    m = detect.metric()
    for e in detect.format(covid_study(), random.Random(0)):
        m.update(detect.parse(e.suffix), e.target)
    maps = {k: v for k, v in m.compute().items() if "map" in k.lower()}
    assert maps and max(maps.values()) == pytest.approx(1.0, abs=0.02)  # the reference boxes, re-quantised


def test_a_view_with_only_a_lung_mask_gets_the_lung_boxes_of_the_mask():
    import numpy as np

    from cxrvlm.records import Study, View

    mask = np.zeros((40, 60), bool)
    mask[5:35, 6:24] = True  # image left = patient's right lung
    mask[8:30, 36:54] = True
    view = View("m", path="m.png", view_position="PA", size=(40, 60), masks={"lungs": mask})
    study = Study("s", "p", "test", "test", views=[view])
    (ex,) = detect.format(study, random.Random(0))
    boxes = {b["label"]: b["box"] for b in ex.target["boxes"]}
    assert boxes["right lung"] == pytest.approx([6 / 60, 5 / 40, 24 / 60, 35 / 40])
    assert boxes["left lung"] == pytest.approx([36 / 60, 8 / 40, 54 / 60, 30 / 40])
    assert {lab for lab, _ in detect.parse(ex.suffix).boxes} == {"right lung", "left lung"}
