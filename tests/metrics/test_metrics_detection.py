"""Detection (COCO mAP) and grounding metrics against hand-computed values."""
from __future__ import annotations

import math

import pytest

from cxrvlm.metrics import DetectionMetric, GroundingMetric, box_iou
from cxrvlm.examples import Prediction

GT = [0.0, 0.0, 0.5, 0.5]


def _p(boxes, scores=None, valid=True):
    extra = {"box_scores": scores} if scores is not None else {}
    return Prediction(task="detect", valid=valid, boxes=[(lab, tuple(b)) for lab, b in boxes], extra=extra)


def _t(*boxes, size=None):
    t = {"boxes": [{"label": lab, "box": list(b)} for lab, b in boxes]}
    return dict(t, size=size) if size else t


def test_box_iou_by_hand():
    # intersection 0.25^2 = 0.0625, union 0.25 + 0.25 - 0.0625 = 0.4375
    assert box_iou((0, 0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.31)) == pytest.approx(0.62)
    assert box_iou((0, 0, 0.1, 0.1), (0.5, 0.5, 0.6, 0.6)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_perfect_and_partial_match():
    m = DetectionMetric()
    m.update(_p([("lung", GT)]), _t(("lung", GT), size=[512, 256]))
    r = m.compute()
    assert r["map"] == pytest.approx(1.0) and r["map_50"] == pytest.approx(1.0) and r["ap_lung"] == pytest.approx(1)
    # IoU 0.62 passes the IoU thresholds 0.50, 0.55, 0.60 of the ten 0.50..0.95: mAP 3/10, AP@.5 1, AP@.75 0
    m = DetectionMetric()
    m.update(_p([("lung", (0, 0, 0.5, 0.31))]), _t(("lung", GT)))
    r = m.compute()
    assert r["map"] == pytest.approx(0.3) and r["map_50"] == pytest.approx(1.0) and r["map_75"] == pytest.approx(0)


def test_score_ranking_by_hand():
    """Ranked TP (0.9), FP (0.8), TP (0.3): precision 1 up to recall 0.5, then 2/3 up to recall 1. COCO's 101
    recall points: 51 at precision 1 (0.00..0.50) and 50 at 2/3 -> AP = (51 + 50 * 2/3) / 101."""
    m = DetectionMetric()
    m.update(_p([("lung", GT)], [0.9]), _t(("lung", GT)))
    m.update(_p([("lung", (0.6, 0.6, 0.9, 0.9)), ("lung", GT)], [0.8, 0.3]), _t(("lung", GT)))
    r = m.compute()
    assert r["map_50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert r["map"] == pytest.approx(r["map_50"])  # perfect boxes: every IoU threshold alike
    assert (r["n"], r["n_gt_boxes"], r["n_pred_boxes"]) == (2, 2, 3)


def test_no_predictions_no_ground_truth_and_invalid():
    m = DetectionMetric(categories=["a", "b"])
    m.update(_p([]), _t(("a", GT)))  # a missed box
    m.update(_p([("a", GT)]), _t())  # a box on an image with none: a false positive
    m.update(_p([], valid=False), _t(("a", GT)))
    m.update(_p([("zebra", GT)]), _t(("a", GT)))  # unknown label: ignored by COCO, counted
    r = m.compute()
    assert r["map"] == pytest.approx(0.0) and r["n_invalid"] == 1 and r["n_unknown_label"] == 1
    assert math.isnan(r["ap_b"])  # no ground truth of b: left out of the mean
    assert math.isnan(DetectionMetric().compute()["map"])
    m = DetectionMetric()
    m.update(_p([("a", GT)]), _t())
    assert math.isnan(m.compute()["map"])  # no ground truth at all


def test_detection_bad_targets():
    m = DetectionMetric()
    with pytest.raises(ValueError, match="missing field 'boxes'"):
        m.update(_p([]), {"box": GT})
    with pytest.raises(ValueError, match=r"boxes\[0\]"):
        m.update(_p([]), {"boxes": [{"label": "a", "box": [0.5, 0, 0.1, 1]}]})
    m = DetectionMetric(categories=["a"])
    m.update(_p([]), _t(("b", GT)))
    with pytest.raises(ValueError, match="not one of"):
        m.compute()


def test_grounding_by_hand():
    m = GroundingMetric()
    m.update(_p([("left lung", GT)]), {"box": GT, "label": "left lung"})  # IoU 1
    m.update(_p([("right lung", GT), ("left lung", (0.25, 0.25, 0.75, 0.75))]),
             {"box": GT, "label": "Left Lung"})  # the box with the target's label: IoU 1/7
    m.update(_p([], valid=False), {"box": GT, "label": "left lung"})  # 0
    m.update(_p([]), {"box": GT})  # no box: 0
    r = m.compute()
    assert r["accuracy_iou50"] == pytest.approx(1 / 4)
    assert r["mean_iou"] == pytest.approx((1 + 1 / 7) / 4)
    assert (r["n"], r["n_invalid"], r["n_no_box"]) == (4, 1, 1)
    with pytest.raises(ValueError, match="box"):
        m.update(_p([]), {"box": [0, 0, 1]})
