"""The structured reading `Interpreter.interpret` returns: a JSON-ready dict, one line of `cxrvlm interpret`; every
field is defined, with its meaning and range, by `cxrvlm.infer.schema.Reading` (which `check_reading` applies and the
HTTP API publishes). The head and tail keys are the interpreter's; each task fills its own fields (`Task.reading`,
`Task.read`):

    {"image": ..., "model": ..., "notice": "Research use only. Not a diagnosis.", "image_size": [h, w],
     "prior": ... | null, "quality": {"assessable": bool, "view": ... | null, "reasons": [...]},
     "verdict": {"label": "tuberculosis" | "abnormal, not tuberculosis" | "no finding called" | "not tuberculosis",
                 "called": [...], "source": "label head" | "decoder"} | null,
     "tb": {"probability": p, "label": "tuberculosis"|"normal", "threshold": t, "threshold_source": ...} | null,
     "findings": [{"label": ..., "probability": p}],
     "saliency": [{"label": ..., "method": ..., "grid": [g, g], "png": "<base64 grey PNG>", "peak": [x, y]}],
     "report": "...",
     "report_source": "generated" | "templated from the reading" | "withheld" | "",
     "consistency": {"checked_against": "label head", "contradictions": [...]} | null,
     "detections": [{"label": ..., "box": [x1, y1, x2, y2], "score": s}],
     "segmentations": [{"label": ..., "box": [...], "mask": {"size": [h, w], "counts": "<COCO RLE>"}, "score": s}],
     "answers": [{"question": ..., "answer": ..., "probability": p, "closed": bool, ("source": "label head"),
                  ("validation": {"type", "n", "accuracy", "constant_accuracy", "no_better_than_constant"})}],
     "tasks": [...], "warnings": [...], "timing_ms": {stage: ms}}

Coordinates, one convention throughout: a box is [x1, y1, x2, y2] in pixels of the input image (x to the right, y
down, from the top-left corner; x2, y2 exclusive edges, floats); a point is [x, y] (a saliency `peak`); a size is
[height, width] (`image_size`, a mask's RLE `size`, a saliency `grid`), as COCO RLE has it; masks are COCO RLE at
the input image's size.
A task that was not asked for, or whose model output was malformed, leaves its field empty (null / [] / "");
an image with nothing to read (blank, one grey level, tiny) or that the view gate does not take for a frontal chest
radiograph (`cxrvlm.infer.quality`; `quality.view` is what the gate saw, `quality.view_probabilities` its
probability of each kind) gets `quality.assessable` false with the reasons, and no task runs on it.
One verdict: with a model that has a label head, the TB probability and the findings are the head's, and the
generated report is checked against the head's calls (`cxrvlm.tasks.verdict`) and, when the model ships a
`copy_guard.npz`, against its training text; a report that contradicts them, or copies a run of words only one
training patient's text holds, is replaced by one templated from the calls (`report_source`; "withheld" without a
label head), and `consistency.contradictions` says what was wrong with the generated one; a yes/no question about
a head label or normality is answered by the head's call (`source`).
`saliency` (models with a label head): where TB and each called finding come from on the film
(`cxrvlm.tasks.saliency`: the head's class activation maps, each scaled to its own range; `peak` in input pixels).
The numbers: `tb.probability` is P("tuberculosis") among the TB answers, from their likelihoods, and `tb.label` is
"tuberculosis" when it reaches `tb.threshold` (from `threshold_source`: "argument", the model's
"operating_point.json", or "default"); a finding's probability is its share of the finding answers' likelihood; a
detection's score is the probability that the box is right (IoU >= 0.5 with the true box of its label), Platt-scaled
on validation when the model ships a `box_calibration.json` (the built-in model does; `cxrvlm eval` fits it), else
the geometric mean of the probabilities of its four <loc> tokens; a segmentation's score is the geometric mean over
its four <loc> and sixteen <seg> tokens (not calibrated); a closed answer's probability is its share of the
candidates' likelihood (or the label head's probability, `source`), an open one's its tokens' mean confidence; a
closed answer carries `validation` (when the model ships a `question_types.json`, as `cxrvlm eval` writes it): how
questions of its type were answered on validation patients (as a reading answers them), beside what one fixed
answer scored there; an answer whose type did no better than that does not follow the film, and the reading warns.
"""
from __future__ import annotations

import copy
from typing import Any

import pydantic

from cxrvlm.about import NOTICE
from cxrvlm.infer import schema
from cxrvlm.tasks import readable_tasks, reading_fields

TASKS = tuple(readable_tasks())  # what a reading can hold, in its order (each task says its fields)
# What is detected and segmented unless asked otherwise: the regions the project's training data outlines.
DETECT_LABELS = ("right lung", "left lung")
SEGMENT_LABELS = ("right lung", "left lung")
_HEAD = ("image", "model", "notice", "image_size", "prior", "quality")
_TAIL = ("tasks", "warnings", "timing_ms")
KEYS = (*_HEAD, *reading_fields(), *_TAIL)


def new_reading(image: str, model: str, image_size: list[int], tasks: list[str], prior: str | None,
                quality: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A reading with every task's fields empty, keys in `KEYS` order; tasks fill their own fields."""
    return {"image": image, "model": model, "notice": NOTICE, "image_size": image_size, "prior": prior,
            "quality": quality, **copy.deepcopy(reading_fields()), "tasks": tasks, "warnings": warnings,
            "timing_ms": {}}


def check_reading(d: dict[str, Any]) -> list[str]:
    """What is wrong with a reading dict (e.g. one parsed back from JSON), as a list of problems ([] = valid): the
    keys in their order, and every field as `schema.Reading` defines it; an input that failed, {"image", "error"}
    (a line of `cxrvlm interpret` too), as `schema.ReadingError` does."""
    failed = "error" in d
    problems = [] if failed else [f"missing key {k!r}" for k in KEYS if k not in d]
    if problems:
        return problems
    try:
        (schema.ReadingError if failed else schema.Reading).model_validate(d)
    except pydantic.ValidationError as e:
        return [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
    return []
