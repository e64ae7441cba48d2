"""Visual grounding: a phrase -> its box. Prefix `locate the right lung`, suffix four loc tokens (y1 x1 y2 x2,
round(v * 1023), PaliGemma's codec) and nothing else.

One example per labelled box whose label occurs once on its view: with two boxes of one label the phrase does not
say which one is meant, so those are left to `detect`.

target keys: "label" (the phrase), "box" ([x1, y1, x2, y2] normalised).
"""
from __future__ import annotations

import logging
import random
import re
from collections import Counter
from typing import Any

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.detection import GroundingMetric
from cxrvlm.records import Study
from cxrvlm.tasks import _text
from cxrvlm.tasks.base import Task, register
from cxrvlm.tokens.loc import LOC_RE, decode_locs, encode_box
from cxrvlm.tokens.shape import BOX_ONLY

log = logging.getLogger(__name__)

NAME = "ground"
# Four loc tokens, optionally followed by the phrase echoed back (PaliGemma's detect habit), nothing else.
_ANSWER_RE = re.compile(r"^\s*((?:<loc\d{4}>\s*){4})([^<>]*)$")


def prompt(label: str) -> str:
    """`locate the <phrase>` for a label name or phrase."""
    p = _text.phrase(label)
    if not p:
        raise ValueError(f"ground.prompt: empty phrase from {label!r}")
    return f"locate the {p}"


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> one example per box whose label is unique on its view. `rng` is unused (nothing to choose)."""
    out = []
    for view in _text.usable_views(study):
        boxes = _text.view_boxes(view)
        counts = Counter(_text.phrase(b.label) for b in boxes)
        for box in boxes:
            p = _text.phrase(box.label)
            if not p or counts[p] != 1:
                if p:
                    log.debug("ground: %s has %d boxes of %r; ambiguous phrase", view.image_id, counts[p], p)
                continue
            target = {"label": p, "box": [float(v) for v in box.as_tuple()]}
            out.append(_text.make_example(NAME, study, [view], prompt(p), encode_box(*box.as_tuple()), target))
    return out


def parse(text: str, image_size: tuple[int, int] | None = None) -> Prediction:
    """Model text -> one normalised box in `Prediction.boxes` (label "" unless echoed). Invalid unless the text is
    exactly four loc tokens (plus an optional echoed phrase) with y1 <= y2 and x1 <= x2. Never raises."""
    if not isinstance(text, str):
        return Prediction(NAME, valid=False, reason=f"output is a {type(text).__name__}, not text")
    if not text.strip():
        return Prediction(NAME, valid=False, reason="empty output")
    m = _ANSWER_RE.match(text[:2000])
    if m is None or len(text) > 2000:
        n = len(LOC_RE.findall(text[:2000]))
        return Prediction(NAME, valid=False, reason=f"expected exactly 4 location tokens, found {n} and other text",
                          text=text[:2000])
    box = decode_locs([int(t) for t in LOC_RE.findall(m.group(1))])
    if box[2] < box[0] or box[3] < box[1]:
        return Prediction(NAME, valid=False, reason="box corners inverted (y2 < y1 or x2 < x1)", text=text)
    label = _text.normalise(m.group(2))
    extra: dict[str, Any] = {}
    if image_size is not None:
        h, w = image_size
        extra["box_px"] = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
    return Prediction(NAME, text=text, label=label or None, boxes=[(label, box)], extra=extra)


def metric(threshold: float | None = None, fast: bool = False) -> GroundingMetric:
    """Accuracy at IoU >= 0.5 and mean IoU."""
    return GroundingMetric()


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=24,  # four loc tokens (and an echoed phrase at most)
    headline=("accuracy_iou50", "mean_iou"),
    answer_shape=BOX_ONLY,  # four <loc> tokens, no label after them
    coordinates=True, zoom_shift_safe=True))  # every coordinate is a loc token: a zoom/shift rewrites them
