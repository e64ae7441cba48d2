"""Detection scores as probabilities: from an evaluation's detection records, which predicted boxes were right
(IoU >= 0.5 with a not yet matched true box of the same label, highest score first, as COCO matches), the expected
calibration error of the raw scores, and a Platt scaling fitted on them (its own ECE measured out of sample, over
two folds of studies). `cxrvlm eval` writes the fit as `box_calibration.json`; `cxrvlm ship` copies it beside the
model and `cxrvlm interpret` then gives each detection's score as the probability that the box is right.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrvlm.metrics.calibration import ece, fit_platt, fold_of, platt
from cxrvlm.metrics.detection import box_iou
from cxrvlm.tasks import _text

IOU = 0.5
FOLDS = 2


def outcomes(records: Sequence[dict[str, Any]]) -> list[tuple[str, float, bool]]:
    """(study, score, right) of every predicted box with a score in records whose target lists true boxes."""
    out = []
    for r in records:
        truth = (r.get("target") or {}).get("boxes")
        pred = r.get("prediction") or {}
        scores = pred.get("box_scores")
        if "skipped" in r or not isinstance(truth, list) or not scores:
            continue
        boxes = [(b["label"], b["box"], s) for b, s in zip(pred.get("boxes") or [], scores)]
        free = [(_text.normalise(t["label"]), t["box"]) for t in truth]
        for label, box, score in sorted(boxes, key=lambda b: -b[2]):
            best = max(range(len(free)), default=None,
                       key=lambda i: box_iou(box, free[i][1]) if free[i][0] == _text.normalise(label) else -1.0)
            right = best is not None and free[best][0] == _text.normalise(label) and box_iou(box, free[best][1]) >= IOU
            if right:
                free.pop(best)
            out.append((str(r.get("study_id")), float(score), right))
    return out


def fit(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """{"a", "b", "n", "n_right", "ece_raw", "ece_calibrated"} (calibrated: out of sample), or None when the records
    hold too few right and wrong boxes to fit (fewer than 5 of either)."""
    rows = outcomes(records)
    y = np.array([r for _, _, r in rows], float)
    if len(rows) < 10 or y.sum() < 5 or len(y) - y.sum() < 5:
        return None
    s = np.array([score for _, score, _ in rows])
    folds = np.array([fold_of(study, FOLDS) for study, _, _ in rows])
    held = np.empty_like(s)
    for k in range(FOLDS):
        train, test = folds != k, folds == k
        if test.any():
            ok = y[train].min() != y[train].max() if train.any() else False
            held[test] = platt(s[test], *fit_platt(y[train], s[train])) if ok else s[test]
    a, b = fit_platt(y, s)
    return {"a": a, "b": b, "n": len(rows), "n_right": int(y.sum()), "iou": IOU, "ece_raw": ece(y, s),
            "ece_calibrated": ece(y, held)}
