"""Segmentation metrics: COCO mask mAP (pycocotools, masks as RLE) and Dice / IoU per label.

Target: `{"masks": [{"label": str, <mask>}, ...], "size": [H, W]}` where <mask> is one of `"mask"` (bool H x W
array or nested list, or a COCO RLE dict), `"rle"` (COCO RLE dict, compressed or uncompressed counts) or
`"mask_path"` (an image file; pixels >= 128 are foreground, as in 0/255 masks). Prediction fields read: `pred.valid`,
`pred.masks` (list of (label, box, bool H x W)); a predicted mask of another shape is resized (nearest) to the
target's size; `pred.extra["mask_scores"]` (else `"box_scores"`, else 1.0 each) as COCO confidences.

Dice and IoU match prediction to target by label: for each label present in an image's target, the union of the
target's masks of that label against the union of the predicted masks of that label (empty if none: Dice 0); both
empty counts 1. `dice` / `iou` average over all (image, label) pairs, `dice_<label>` / `iou_<label>` per label.
Keys also: `map`, `map_50`, `map_75`, `ap_<label>`, `ap50_<label>`, `n`, `n_invalid`, `n_unknown_label`.
An invalid prediction has no masks (Dice 0) and is counted in `n_invalid`.
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from cxrvlm.metrics.common import require, slug
from cxrvlm.metrics.detection import coco_eval, per_category_ap, pred_scores
from cxrvlm.examples import Prediction

log = logging.getLogger(__name__)


def dice_iou(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(Dice, IoU) of two bool masks of one shape; (1, 1) when both are empty."""
    if pred.shape != target.shape:
        raise ValueError(f"dice_iou: mask shapes differ: {pred.shape} vs {target.shape}")
    inter = int(np.logical_and(pred, target).sum())
    p, t = int(pred.sum()), int(target.sum())
    if p + t == 0:
        return 1.0, 1.0
    return 2 * inter / (p + t), inter / (p + t - inter)


def _decode_rle(rle: Any, where: str) -> np.ndarray:
    try:
        h, w = (int(s) for s in rle["size"])
        counts = rle["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        else:
            rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(rle).astype(bool)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: not a COCO RLE with 'size' and 'counts' ({e})") from None


def load_target_mask(entry: dict[str, Any], size: tuple[int, int], where: str) -> np.ndarray:
    """The bool (H, W) mask of one target entry ("mask", "rle" or "mask_path"); ValueError naming `where`."""
    if "mask" in entry and isinstance(entry["mask"], dict):
        mask = _decode_rle(entry["mask"], where)
    elif "mask" in entry:
        mask = np.asarray(entry["mask"]).astype(bool)
    elif "rle" in entry:
        mask = _decode_rle(entry["rle"], where)
    elif "mask_path" in entry:
        path = Path(entry["mask_path"])
        try:
            with Image.open(path) as im:
                mask = np.asarray(im.convert("L")) >= 128
        except OSError as e:
            raise ValueError(f"{where}: cannot read mask_path {path}: {e}") from None
    else:
        raise ValueError(f"{where}: needs one of 'mask', 'rle', 'mask_path' (has {sorted(entry)})")
    if mask.shape != tuple(size):
        raise ValueError(f"{where}: mask shape {mask.shape} differs from the target size {list(size)}")
    return mask


def _resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
    return np.asarray(img.resize((size[1], size[0]), Image.NEAREST)) >= 128


def _rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


class SegmentationMetric:
    """COCO segm mAP and per-label Dice / IoU. categories: the class names (default: the target labels seen)."""

    def __init__(self, categories: Sequence[str] | None = None) -> None:
        self.categories = list(categories) if categories is not None else None
        self.reset()

    def reset(self) -> None:
        self._images: list[tuple[tuple[int, int], list[tuple[str, dict]], list[tuple[str, dict, float]]]] = []
        self._scores: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._n_invalid = 0

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        size = require(target, "size", "SegmentationMetric")
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(f"SegmentationMetric: target 'size' must be [H, W], got {size!r}") from None
        entries = require(target, "masks", "SegmentationMetric")
        gt: list[tuple[str, np.ndarray]] = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or "label" not in e:
                raise ValueError(f"SegmentationMetric: target masks[{i}] must be a dict with 'label'")
            gt.append((str(e["label"]), load_target_mask(e, (h, w), f"SegmentationMetric target masks[{i}]")))
        preds: list[tuple[str, np.ndarray, float]] = []
        if not pred.valid:
            self._n_invalid += 1
        else:
            key = "mask_scores" if "mask_scores" in pred.extra else "box_scores"
            scores = pred_scores(pred, len(pred.masks), key)
            for (label, _box, m), s in zip(pred.masks, scores):
                m = np.asarray(m, dtype=bool)
                preds.append((str(label), m if m.shape == (h, w) else _resize(m, (h, w)), s))
        for label in dict.fromkeys(lab for lab, _ in gt):
            t = np.logical_or.reduce([m for lab, m in gt if lab == label])
            p = np.logical_or.reduce([m for lab, m, _ in preds if lab == label] or [np.zeros((h, w), bool)])
            self._scores[label].append(dice_iou(p, t))
        self._images.append(((h, w), [(lab, _rle(m)) for lab, m in gt], [(lab, _rle(m), s) for lab, m, s in preds]))

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {"n": float(len(self._images)), "n_invalid": float(self._n_invalid)}
        pairs = [v for vals in self._scores.values() for v in vals]
        out["dice"] = float(np.mean([d for d, _ in pairs])) if pairs else math.nan
        out["iou"] = float(np.mean([i for _, i in pairs])) if pairs else math.nan
        for label, vals in self._scores.items():
            out[f"dice_{slug(label)}"] = float(np.mean([d for d, _ in vals]))
            out[f"iou_{slug(label)}"] = float(np.mean([i for _, i in vals]))
        out.update(self._coco())
        return out

    def _coco(self) -> dict[str, float]:
        cats = self.categories or sorted({lab for _, gt, _ in self._images for lab, _ in gt})
        index = {c: i + 1 for i, c in enumerate(cats)}
        images, gts, dts, unknown = [], [], [], 0
        for img_id, ((h, w), gt, preds) in enumerate(self._images, 1):
            images.append({"id": img_id, "height": h, "width": w})
            for lab, rle in gt:
                if lab not in index:
                    raise ValueError(f"SegmentationMetric: ground-truth label {lab!r} is not one of {cats}")
                gts.append(self._ann(img_id, index[lab], rle))
            for lab, rle, score in preds:
                if lab not in index:
                    unknown += 1
                    continue
                dts.append(dict(self._ann(img_id, index[lab], rle), score=score))
        out = {"n_unknown_label": float(unknown)}
        if not gts:
            return dict(out, map=math.nan, map_50=math.nan, map_75=math.nan)
        stats, precision = coco_eval(images, cats, gts, dts, "segm")
        out.update(map=float(stats[0]), map_50=float(stats[1]), map_75=float(stats[2]))
        for k, c in enumerate(cats):
            out[f"ap_{slug(c)}"], out[f"ap50_{slug(c)}"] = per_category_ap(precision, k)
        return out

    @staticmethod
    def _ann(img_id: int, cat: int, rle: dict) -> dict:
        return {"image_id": img_id, "category_id": cat, "segmentation": rle, "area": float(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)]}
