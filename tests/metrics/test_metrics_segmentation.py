"""Segmentation metrics (Dice, IoU, COCO segm mAP) against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from cxrvlm.metrics import SegmentationMetric, dice_iou
from cxrvlm.examples import Prediction


def _rect(r0, r1, c0, c1, shape=(10, 10)):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _pred(*masks, valid=True, scores=None):
    extra = {"mask_scores": scores} if scores else {}
    return Prediction(task="segment", valid=valid, masks=[(lab, (0, 0, 1, 1), m) for lab, m in masks], extra=extra)


def test_dice_iou_by_hand():
    target = _rect(0, 2, 0, 3, (4, 4))  # 6 pixels
    pred = _rect(1, 3, 0, 2, (4, 4))  # 4 pixels, 2 shared
    assert dice_iou(pred, target) == pytest.approx((2 * 2 / 10, 2 / 8))
    assert dice_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == (1.0, 1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        dice_iou(np.zeros((2, 2), bool), np.zeros((3, 2), bool))


def test_segmentation_metric_by_hand(tmp_path):
    left, right = _rect(0, 10, 0, 4), _rect(0, 10, 6, 10)
    Image.fromarray(right.astype(np.uint8) * 255).save(tmp_path / "right.png")
    target = {"size": [10, 10], "masks": [{"label": "left lung", "rle": _rle(left)},
                                          {"label": "right lung", "mask_path": str(tmp_path / "right.png")}]}
    m = SegmentationMetric()
    m.update(_pred(("left lung", left)), target)  # left exact, right missed
    # left predicted on a 5 x 5 grid: resized (nearest) to 10 x 10 it is exact; right drawn on the wrong side
    m.update(_pred(("left lung", _rect(0, 5, 0, 2, (5, 5))), ("right lung", left)),
             {"size": [10, 10], "masks": [{"label": "left lung", "mask": left.tolist()},
                                          {"label": "right lung", "mask": right}]})
    r = m.compute()
    # Dice: image 1 left 1, right 0 (missed); image 2 left 1, right 0 (no overlap)
    assert r["dice_left_lung"] == pytest.approx(1.0) and r["dice_right_lung"] == pytest.approx(0.0)
    assert r["dice"] == pytest.approx(0.5) and r["iou"] == pytest.approx(0.5)
    # COCO: left lung found in both images (AP 1); right lung: one mask with IoU 0 (AP 0) -> mAP 0.5
    assert r["ap_left_lung"] == pytest.approx(1.0) and r["ap_right_lung"] == pytest.approx(0.0)
    assert r["map"] == pytest.approx(0.5) and r["n"] == 2


def test_partial_overlap_and_invalid():
    target = {"size": [10, 10], "masks": [{"label": "lung", "mask": _rect(0, 10, 0, 4)}]}  # 40 pixels
    m = SegmentationMetric()
    m.update(_pred(("lung", _rect(0, 10, 0, 2))), target)  # 20 pixels inside: Dice 40/60, IoU 1/2
    m.update(_pred(valid=False), target)
    r = m.compute()
    assert r["dice"] == pytest.approx((2 / 3 + 0) / 2) and r["iou"] == pytest.approx((0.5 + 0) / 2)
    assert r["n_invalid"] == 1
    # COCO: IoU 0.5 matches only at the 0.50 threshold; recall reaches 1/2 at precision 1 -> AP@.5 = 51/101
    assert r["map_50"] == pytest.approx(51 / 101) and r["map_75"] == pytest.approx(0.0)


def test_segmentation_bad_targets():
    m = SegmentationMetric()
    with pytest.raises(ValueError, match="missing field 'size'"):
        m.update(_pred(), {"masks": []})
    with pytest.raises(ValueError, match="differs from the target size"):
        m.update(_pred(), {"size": [4, 4], "masks": [{"label": "a", "mask": np.zeros((3, 3), bool)}]})
    with pytest.raises(ValueError, match="needs one of"):
        m.update(_pred(), {"size": [4, 4], "masks": [{"label": "a"}]})
    with pytest.raises(ValueError, match="cannot read"):
        m.update(_pred(), {"size": [4, 4], "masks": [{"label": "a", "mask_path": "/nonexistent.png"}]})
    assert math.isnan(SegmentationMetric().compute()["map"])
