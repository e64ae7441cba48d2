"""Object detection, PaliGemma format: prefix `detect right lung ; left lung`, suffix
`<loc..><loc..><loc..><loc..> right lung ; <loc..><loc..><loc..><loc..> left lung`.

Four loc tokens per box (y1 x1 y2 x2, round(v * 1023)), then the label phrase; objects joined by " ; " in the
order of the prompt's labels (several boxes of one label follow each other, in the data's order).

One example per view that has boxes (drawn ones, else the lung boxes of its lung mask: `_text.view_boxes`). The prompt lists the labels boxed on that view, in order of first appearance,
and, with probability 1/2 (drawn from `rng`), one label the study's labels say is absent (value 0.0), placed at a
random position: the answer has nothing for it, which teaches the model to stay silent about absent findings.
Only a known-negative label is used, since an unlabelled one may be present but unboxed, and not a diagnosis by
cause (COVID-19, bacterial pneumonia, ...: `_text.PARENT`), which no source draws as a region.

target keys: "labels" (prompt phrases, in order), "boxes" (list of {"label": phrase, "box": [x1, y1, x2, y2]}
normalised), "absent" (the phrase asked about that has no box, or None).
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.calibration import platt
from cxrvlm.metrics.detection import DetectionMetric
from cxrvlm.records import Study, View
from cxrvlm.tasks import _reading, _text
from cxrvlm.tasks.base import ReadContext, Task, register
from cxrvlm.tokens.loc import LOC_RE, decode_locs, encode_box
from cxrvlm.tokens.shape import BOXES

NAME = "detect"
SEPARATOR = " ; "
_OBJECT_RE = re.compile(r"^\s*((?:<loc\d{4}>\s*){4})\s*([^<>]*?)\s*$")
_MAX_DETECT_CHARS = 50_000  # ~1,000 objects; longer is a runaway generation


def prompt(labels: Sequence[str]) -> str:
    """`detect a ; b` for the given labels (phrases or label names)."""
    phrases = [_text.phrase(x) for x in labels]
    if not phrases or any(not p for p in phrases):
        raise ValueError(f"detect.prompt: needs one or more non-empty labels, got {list(labels)}")
    return "detect " + SEPARATOR.join(phrases)


def render(objects: Sequence[tuple[str, Sequence[float]]]) -> str:
    """[(phrase, (x1, y1, x2, y2)), ...] -> `<loc..>x4 phrase ; ...` (the order given)."""
    return SEPARATOR.join(f"{encode_box(*box)} {label}" for label, box in objects)


def _view_example(study: Study, view: View, rng: random.Random) -> Example | None:
    order: list[str] = []
    view_boxes = _text.view_boxes(view)
    for b in view_boxes:
        p = _text.phrase(b.label)
        if p and p not in order:
            order.append(p)
    if not order:
        return None
    absent = None
    candidates = [_text.phrase(k) for k in _text.known_negatives(study) if k not in _text.PARENT]
    candidates = [p for p in candidates if p and p not in order]
    if candidates and rng.random() < 0.5:
        absent = rng.choice(candidates)
        order.insert(rng.randrange(len(order) + 1), absent)
    objects = [(p, b.as_tuple()) for p in order for b in view_boxes if _text.phrase(b.label) == p]
    target = {"labels": order, "absent": absent,
              "boxes": [{"label": p, "box": [float(v) for v in box]} for p, box in objects]}
    return _text.make_example(NAME, study, [view], prompt(order), render(objects), target,
                              {"absent_label": absent})


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> one detection example per view with boxes."""
    made = (_view_example(study, v, rng) for v in _text.usable_views(study))
    return [e for e in made if e is not None]


def _parse_object(fragment: str, allowed: set[str] | None) -> tuple[str, tuple[float, ...]] | str:
    """One ` ; `-separated fragment -> (phrase, box), or the reason it is malformed."""
    m = _OBJECT_RE.match(fragment)
    if m is None:
        n = len(LOC_RE.findall(fragment))
        return f"{n} location tokens where 4 then a label were expected"
    label = _text.normalise(m.group(2))
    if not label:
        return "box without a label"
    if allowed is not None and label not in allowed:
        return f"label {label[:40]!r} was not asked for"
    box = decode_locs([int(t) for t in LOC_RE.findall(m.group(1))])
    if box[2] < box[0] or box[3] < box[1]:
        return "box corners inverted (y2 < y1 or x2 < x1)"
    return label, box


def parse(text: str, image_size: tuple[int, int] | None = None,
          labels: Sequence[str] | None = None) -> Prediction:
    """Model text -> boxes [(phrase, (x1, y1, x2, y2))] normalised. Malformed fragments (truncated loc tokens, no
    label, a label not in `labels` when given, inverted corners) are skipped and listed in `extra["malformed"]`;
    any of them, or no box at all, makes the prediction invalid while the good boxes are kept. With `image_size`
    (H, W), `extra["boxes_px"]` has the boxes in pixels. Never raises."""
    if not isinstance(text, str):
        return Prediction(NAME, valid=False, reason=f"output is a {type(text).__name__}, not text")
    if len(text) > _MAX_DETECT_CHARS:
        return Prediction(NAME, valid=False, reason=f"output is {len(text)} characters, a runaway generation")
    allowed = {_text.normalise(x) for x in labels} if labels is not None else None
    boxes: list[tuple[str, tuple[float, float, float, float]]] = []
    malformed: list[dict[str, str]] = []
    for fragment in text.split(";"):
        if not fragment.strip():
            continue
        got = _parse_object(fragment, allowed)
        if isinstance(got, str):
            malformed.append({"text": fragment.strip()[:80], "reason": got})
        else:
            boxes.append(got)  # type: ignore[arg-type]
    extra: dict[str, Any] = {"malformed": malformed}
    if image_size is not None:
        h, w = image_size
        extra["boxes_px"] = [(lab, (x1 * w, y1 * h, x2 * w, y2 * h)) for lab, (x1, y1, x2, y2) in boxes]
    reasons = [f"{len(malformed)} malformed object(s): {malformed[0]['reason']}"] if malformed else []
    if not boxes:
        reasons.append("no box found" if text.strip() else "empty output")
    return Prediction(NAME, valid=not reasons, reason="; ".join(reasons), text=text,
                      labels=[lab for lab, _ in boxes], boxes=boxes, extra=extra)


def metric(threshold: float | None = None, fast: bool = False) -> DetectionMetric:
    """COCO mAP@[.5:.95], mAP@.5 and mAP@.75 over the boxes."""
    return DetectionMetric()


def read(ctx: ReadContext) -> dict[str, Any]:
    """Boxes of the asked labels in pixels of the input image, each with a score: the probability that the box is
    right (IoU >= 0.5) when the model ships a box calibration, else its loc tokens' confidence."""
    labels = ctx.options.detect_labels
    text, token_scores, pred = _reading.generate_objects(ctx, TASK, prompt(labels), labels)
    h, w = ctx.image_size
    scores = _reading.object_confidences(ctx, NAME, text, token_scores,
                                         [_reading.box_tokens(b) for _, b in pred.boxes])
    if ctx.options.box_calibration and scores:  # the probability that the box is right, fitted on validation
        scores = [float(p) for p in platt(scores, *ctx.options.box_calibration)]
    return {"detections": [{"label": label, "box": _reading.to_pixels(box, h, w), "score": round(s, 6)}
                           for (label, box), s in zip(pred.boxes, scores)]}


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=96, tokens_per_object=24,  # 4 loc tokens + a label phrase per box, a few boxes
    headline=("map_50", "map"),
    answer_shape=BOXES,  # each object: four <loc> tokens, then its label
    coordinates=True, zoom_shift_safe=True,  # every coordinate is a loc token: a zoom/shift rewrites them
    parse_hints=("labels",), reading={"detections": []}, read=read))
