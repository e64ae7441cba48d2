from __future__ import annotations

import random
import re

import numpy as np
import pytest
from task_studies import MALFORMED, provide_metric

from cxrvlm.records import Study, View
from cxrvlm.tasks import segment
from cxrvlm.tasks.base import get_task
from cxrvlm.tokens.loc import encode_box
from cxrvlm.tokens.rle import rle_decode
from cxrvlm.tokens.seg import encode_seg

OBJECT = re.compile(r"^(?:<loc\d{4}>){4}(?:<seg\d{3}>){16} [a-z ]+$")
H, W = 240, 300


def lungs(h: int = H, w: int = W) -> np.ndarray:
    """Two lung-like blobs (half-ellipses with flat bases); the image's left one is the patient's right lung."""
    yy, xx = np.mgrid[:h, :w]
    top, base = 0.15 * h, 0.85 * h
    right = ((xx - 0.33 * w) / (0.15 * w)) ** 2 + ((yy - base) / (base - top)) ** 2 < 1
    left = ((xx - 0.67 * w) / (0.13 * w)) ** 2 + ((yy - base) / (base - top + 10)) ** 2 < 1
    return (right | left) & (yy < base)


def study(masks: dict) -> Study:
    view = View("v", path="/data/v.png", view_position="PA", size=(H, W), masks=masks)
    return Study("s1", "p1", "covid", "CC BY", views=[view, View("lat", path="/data/l.png")])


def _iou(a, b):
    return float((a & b).sum() / max(1, (a | b).sum()))


def _examples(st, seeds=range(40)):
    return [segment.format(st, random.Random(s))[0] for s in seeds]


def test_format_paligemma_layout_and_variants():
    exs = _examples(study({"lungs": lungs()}))
    prefixes = {e.prefix for e in exs}
    assert prefixes == {"segment right lung ; left lung", "segment left lung ; right lung", "segment lungs",
                        "segment right lung", "segment left lung"}
    for e in exs:
        assert e.images == ["/data/v.png"] and e.task == "segment"
        pieces = e.suffix.split(" ; ")
        assert all(OBJECT.match(p) for p in pieces), e.suffix
        assert [p.rsplit("> ", 1)[1] for p in pieces] == e.target["labels"] == e.prefix[8:].split(" ; ")
        assert e.target["size"] == [H, W] and len(e.target["masks"]) == len(pieces)


def test_sides_are_the_patients():
    e = next(e for e in _examples(study({"lungs": lungs()})) if e.prefix == "segment right lung ; left lung")
    right, left = e.target["masks"]
    assert right["label"] == "right lung" and right["box"][2] < 0.5 < left["box"][0]  # patient's right: image left
    assert e.suffix.startswith(encode_box(*right["box"]))


def test_round_trip_masks_and_boxes():
    """parse(format(x)) gives back each object's label, box (within a loc bin) and mask (IoU vs the original)."""
    for e in _examples(study({"lungs": lungs()}), range(12)):
        pred = segment.parse(e.suffix, image_size=(H, W), labels=e.target["labels"])
        assert pred.valid, pred.reason
        assert [lab for lab, _, _ in pred.masks] == e.target["labels"]
        for (lab, box, mask), t in zip(pred.masks, e.target["masks"]):
            assert np.allclose(box, t["box"], atol=1 / 1023)
            truth = rle_decode(t["rle"])
            assert mask.shape == truth.shape == (H, W) and _iou(mask, truth) >= 0.85, (lab, _iou(mask, truth))


def test_other_labels_give_one_object_per_component():
    m = np.zeros((H, W), bool)
    m[150:200, 200:260] = True
    m[40:80, 30:90] = True
    m[0:2, 0:2] = True  # a speck under 1% of the area: dropped
    e = segment.format(study({"Pneumothorax": m}), random.Random(0))[0]
    assert e.prefix == "segment pneumothorax" and e.target["labels"] == ["pneumothorax"]
    boxes = [t["box"] for t in e.target["masks"]]
    assert len(boxes) == 2 and boxes[0][0] < boxes[1][0]  # left to right
    pred = segment.parse(e.suffix, image_size=(H, W))
    assert pred.valid
    assert all(_iou(pm, rle_decode(t["rle"])) > 0.85 for (_, _, pm), t in zip(pred.masks, e.target["masks"]))


def test_views_without_usable_masks_give_no_example(caplog):
    assert segment.format(study({}), random.Random(0)) == []
    assert segment.format(study({"lungs": np.zeros((H, W), bool)}), random.Random(0)) == []
    assert segment.format(study({"lungs": "/no/such/mask.png"}), random.Random(0)) == []
    assert "mask file is missing" in caplog.text
    assert segment.format(study({"lungs": np.ones((10, 10), bool)}), random.Random(0)) == []  # wrong size


def _good(label="left lung", codes=(3,) * 16, box=(0.1, 0.2, 0.5, 0.9)):
    return f"{encode_box(*box)}{encode_seg(codes)} {label}"


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_text_is_invalid_never_raises(text):
    pred = segment.parse(text, image_size=(H, W))
    assert not pred.valid and pred.reason and pred.masks == []


@pytest.mark.parametrize("text, kept, why", [
    ("<loc0100><loc0100><loc0200>" + encode_seg([1] * 16) + " left lung", 0, "3 location tokens"),
    (encode_box(0.1, 0.1, 0.4, 0.4) + encode_seg([1] * 16), 0, "without a label"),
    (encode_box(0.1, 0.1, 0.4, 0.4) + encode_seg([1] * 16) + " heart", 0, "not asked for"),
    (encode_seg([1] * 16) + encode_box(0.1, 0.1, 0.4, 0.4) + " left lung", 0, "before location"),
    ("note " + _good(), 0, "before or between"),
    (_good() + " <seg01", 0, "broken token"),
    ("<loc0500><loc0100><loc0400><loc0200>" + encode_seg([1] * 16) + " left lung", 0, "inverted"),
    (encode_box(0.1, 0.1, 0.4, 0.4) + encode_seg([1] * 15) + " left lung", 1, "expected 16 codes, got 15"),
    (encode_box(0.1, 0.1, 0.4, 0.4) + " left lung", 1, "expected 16 codes, got 0"),
    (encode_box(0.1, 0.1, 0.4, 0.4) + encode_seg([1] * 15) + "<seg200> left lung", 1, "outside 0..127"),
    (encode_box(0.3, 0.3, 0.3, 0.6) + encode_seg([1] * 16) + " left lung", 1, "zero area"),
])
def test_bad_objects_reported_good_ones_kept(text, kept, why):
    pred = segment.parse(_good("right lung") + " ; " + text, image_size=(H, W), labels=["right lung", "left lung"])
    assert not pred.valid and why in pred.reason
    assert len(pred.masks) == 1 + kept and pred.masks[0][0] == "right lung" and pred.masks[0][2].any()
    if kept:
        assert not pred.masks[1][2].any() and pred.extra["decode_errors"][0]["label"] == "left lung"


def test_parse_without_image_size_keeps_codes():
    pred = segment.parse(_good(codes=range(16)))
    assert pred.valid and pred.masks[0][2] is None and pred.extra["codes"] == [list(range(16))]
    assert pred.boxes[0][0] == "left lung" and np.allclose(pred.boxes[0][1], (0.1, 0.2, 0.5, 0.9), atol=1e-3)


def test_prompt_registry_and_tokenizer_swap():
    assert segment.prompt(["Left Lung", "right lung"]) == "segment left lung ; right lung"
    with pytest.raises(ValueError):
        segment.prompt([])
    assert get_task("segment") is segment.TASK
    import torch

    from cxrvlm.tokens.seg import MaskTokenizer
    from cxrvlm.tokens.seg_vqvae import MaskVQVAE

    st = study({"lungs": lungs()})
    before = segment.format(st, random.Random(1))[0].suffix
    torch.manual_seed(0)
    segment.set_mask_tokenizer(MaskTokenizer(MaskVQVAE()))
    try:
        assert segment.format(st, random.Random(1))[0].suffix != before
    finally:
        segment.set_mask_tokenizer(None)
    assert segment.format(st, random.Random(1))[0].suffix == before


def test_metric_reads_parsed_masks(monkeypatch):
    provide_metric(monkeypatch, "SegmentationMetric", "segmentation")
    m = segment.metric()
    for e in _examples(study({"lungs": lungs()}), range(6)):
        m.update(segment.parse(e.suffix, image_size=(H, W)), e.target)
    out = m.compute()
    assert out["n"] == 6 and out["n_invalid"] == 0 and out["map_50"] == 1.0
    assert out["iou_left_lung"] > 0.85 and out["iou_right_lung"] > 0.85 and out["iou_lungs"] > 0.85
    m.update(segment.parse("garbage", image_size=(H, W)), e.target)
    assert m.compute()["n_invalid"] == 1 and m.compute()["iou"] < out["iou"]


@pytest.mark.realdata
def test_real_masks_format_and_parse_back(shared_data):
    """Shenzhen and COVID-19 collection views with lung masks: every example parses back to its own masks."""
    from cxrvlm.sources.base import open_source

    checked = 0
    for name, limit in (("shenzhen_lungs", 3), ("covid", 12)):
        for st in open_source(name, shared_data / name, limit=limit):
            for e in segment.format(st, random.Random(st.study_id)):
                h, w = e.target["size"]
                pred = segment.parse(e.suffix, image_size=(h, w), labels=e.target["labels"])
                assert pred.valid, pred.reason
                for (_, _, mask), t in zip(pred.masks, e.target["masks"]):
                    assert _iou(mask, rle_decode(t["rle"])) > 0.85, (st.study_id, t["label"])
                checked += 1
    assert checked >= 5
