"""Detection (COCO mAP through pycocotools) and visual grounding (accuracy at IoU >= 0.5, mean IoU) metrics.

Targets: detection `{"boxes": [{"label": str, "box": [x1, y1, x2, y2]}, ...], "size": [H, W]}` (boxes normalised to
[0, 1]; `size` optional: without it boxes are scaled to a 1000 x 1000 canvas, which changes nothing but COCO's
small/medium/large split, not reported here); grounding `{"box": [x1, y1, x2, y2], "label": str}`.
Prediction fields read: `pred.valid`, `pred.boxes` (list of (label, (x1, y1, x2, y2)) normalised),
`pred.extra["box_scores"]` (one confidence per box, default 1.0 each: every box then ties, as in PaliGemma-CXR's own
evaluation). An invalid prediction contributes no boxes and is counted in `n_invalid`.

Detection keys: `map` (AP@[.5:.95]), `map_50`, `map_75`, per category `ap_<label>` and `ap50_<label>` (NaN for a
category without ground truth: COCO leaves it out of the mean), `n`, `n_invalid`, `n_gt_boxes`, `n_pred_boxes`.
A predicted label that is no category of the ground truth cannot match anything; COCO ignores it, and it is counted
in `n_unknown_label`.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cxrvlm.metrics.common import as_box, require, slug
from cxrvlm.examples import Prediction

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 when both are empty. Scale-invariant per axis, so
    normalised and pixel boxes give the same value."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def clean_box(box: Sequence[float]) -> Box:
    """A predicted box made well-formed: coordinates ordered and clipped to [0, 1] (a model can emit x2 < x1)."""
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def pred_scores(pred: Prediction, n: int, key: str = "box_scores") -> list[float]:
    """The n confidences of a prediction's boxes (or masks): `pred.extra[key]`, 1.0 each when absent or malformed."""
    scores = pred.extra.get(key) if isinstance(pred.extra, dict) else None
    if scores is None:
        return [1.0] * n
    try:
        out = [float(s) for s in scores]
    except (TypeError, ValueError):
        out = []
    if len(out) != n or not all(math.isfinite(s) for s in out):
        log.warning("prediction has %d boxes but %s=%r; using 1.0 for each", n, key, scores)
        return [1.0] * n
    return out


def _xywh(box: Box, h: float, w: float) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1 * w, y1 * h, (x2 - x1) * w, (y2 - y1) * h]


def coco_eval(images: list[dict], categories: list[str], gts: list[dict], dts: list[dict],
              iou_type: str = "bbox") -> tuple[np.ndarray, np.ndarray]:
    """Run COCOeval on in-memory annotations; returns (stats (12,), precision (T, R, K, A, M)).

    images: [{"id", "height", "width"}]; gts / dts: COCO annotations with "image_id", "category_id" (1-based index
    into categories), "bbox" or "segmentation", "area" (and "score" for dts)."""
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(categories)]

    def build(anns: list[dict]) -> COCO:
        coco = COCO()
        coco.dataset = {"images": images, "categories": cats,
                        "annotations": [dict(a, id=i + 1, iscrowd=0) for i, a in enumerate(anns)]}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    ev = COCOeval(build(gts), build(dts), iou_type)
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress and its table
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats), np.asarray(ev.eval["precision"])


def per_category_ap(precision: np.ndarray, k: int) -> tuple[float, float]:
    """(AP@[.5:.95], AP@.5) of category index k from COCOeval's precision array (area "all", maxDets 100); NaN when
    the category has no ground truth (all entries -1)."""
    p = precision[:, :, k, 0, -1]
    p50 = precision[0, :, k, 0, -1]
    ap = float(p[p > -1].mean()) if (p > -1).any() else math.nan
    ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else math.nan
    return ap, ap50


class DetectionMetric:
    """COCO box mAP over the images seen. categories: the class names (default: the labels of the ground truth)."""

    def __init__(self, categories: Sequence[str] | None = None, canvas: tuple[int, int] = (1000, 1000)) -> None:
        self.categories = list(categories) if categories is not None else None
        self.canvas = canvas
        self.reset()

    def reset(self) -> None:
        self._images: list[tuple[tuple[float, float], list[tuple[str, Box]], list[tuple[str, Box, float]]]] = []
        self._n_invalid = 0

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        raw = require(target, "boxes", "DetectionMetric")
        if not isinstance(raw, list):
            raise ValueError("DetectionMetric: target 'boxes' must be a list of {'label', 'box'}")
        gt = []
        for i, b in enumerate(raw):
            if not isinstance(b, dict) or "label" not in b or "box" not in b:
                raise ValueError(f"DetectionMetric: target boxes[{i}] must be {{'label': str, 'box': [x1,y1,x2,y2]}}")
            gt.append((str(b["label"]), as_box(b["box"], f"DetectionMetric target boxes[{i}]")))
        size = target.get("size") or self.canvas
        if len(size) != 2 or min(float(s) for s in size) <= 0:
            raise ValueError(f"DetectionMetric: target 'size' must be [H, W] > 0, got {size}")
        dets: list[tuple[str, Box, float]] = []
        if not pred.valid:
            self._n_invalid += 1
        else:
            scores = pred_scores(pred, len(pred.boxes))
            dets = [(str(lab), clean_box(box), s) for (lab, box), s in zip(pred.boxes, scores)]
        self._images.append(((float(size[0]), float(size[1])), gt, dets))

    def compute(self) -> dict[str, float]:
        cats = self.categories or sorted({lab for _, gt, _ in self._images for lab, _ in gt})
        index = {c: i + 1 for i, c in enumerate(cats)}
        images, gts, dts, unknown = [], [], [], 0
        for img_id, ((h, w), gt, dets) in enumerate(self._images, 1):
            images.append({"id": img_id, "height": h, "width": w})
            for lab, box in gt:
                if lab not in index:
                    raise ValueError(f"DetectionMetric: ground-truth label {lab!r} is not one of {cats}")
                bbox = _xywh(box, h, w)
                gts.append({"image_id": img_id, "category_id": index[lab], "bbox": bbox, "area": bbox[2] * bbox[3]})
            for lab, box, score in dets:
                if lab not in index:
                    unknown += 1
                    continue
                bbox = _xywh(box, h, w)
                dts.append({"image_id": img_id, "category_id": index[lab], "bbox": bbox,
                            "area": bbox[2] * bbox[3], "score": score})
        out = {"n": float(len(images)), "n_invalid": float(self._n_invalid), "n_gt_boxes": float(len(gts)),
               "n_pred_boxes": float(sum(len(d) for _, _, d in self._images)), "n_unknown_label": float(unknown)}
        if not gts:  # AP is undefined without ground truth
            out.update({"map": math.nan, "map_50": math.nan, "map_75": math.nan})
            return out
        stats, precision = coco_eval(images, cats, gts, dts, "bbox")
        out.update({"map": float(stats[0]), "map_50": float(stats[1]), "map_75": float(stats[2])})
        for k, c in enumerate(cats):
            out[f"ap_{slug(c)}"], out[f"ap50_{slug(c)}"] = per_category_ap(precision, k)
        return out


class GroundingMetric:
    """Accuracy at IoU >= 0.5 and mean IoU of the predicted box (the first with the target's label, else the first
    box) against the target box; a prediction that is invalid or has no box scores IoU 0."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._ious: list[float] = []
        self._n_invalid = self._n_no_box = 0

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        box = as_box(require(target, "box", "GroundingMetric"), "GroundingMetric target")
        if not pred.valid:
            self._n_invalid += 1
            self._ious.append(0.0)
            return
        if not pred.boxes:
            self._n_no_box += 1
            self._ious.append(0.0)
            return
        label = str(target.get("label", "")).strip().lower()
        same = [b for lab, b in pred.boxes if str(lab).strip().lower() == label]
        self._ious.append(box_iou(clean_box(same[0] if same else pred.boxes[0][1]), box))

    def compute(self) -> dict[str, float]:
        n = len(self._ious)
        ious = np.asarray(self._ious, dtype=float)
        return {"n": float(n), "n_invalid": float(self._n_invalid), "n_no_box": float(self._n_no_box),
                f"accuracy_iou{round(self.threshold * 100)}": float((ious >= self.threshold).mean()) if n else math.nan,
                "mean_iou": float(ious.mean()) if n else math.nan}
