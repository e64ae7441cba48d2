"""The structured reading `Interpreter.interpret` returns, as dataclasses that serialise to the JSON of one line of
`cxrvlm interpret`:

    {"image": ..., "model": ..., "notice": "Research use only. Not a diagnosis.", "image_size": [h, w],
     "prior": ... | null, "tb": {"probability": p, "label": "tuberculosis"|"normal", "threshold": t,
     "threshold_source": ...} | null, "findings": [{"label": ..., "probability": p}], "report": "...",
     "detections": [{"label": ..., "box": [x1, y1, x2, y2], "score": s}],
     "segmentations": [{"label": ..., "box": [...], "mask": {"size": [h, w], "counts": "<COCO RLE>"}, "score": s}],
     "answers": [{"question": ..., "answer": ..., "probability": p, "closed": bool}],
     "tasks": [...], "warnings": [...], "timing_ms": {stage: ms}}

Boxes are pixels of the input image (x2, y2 exclusive edges, floats); masks are COCO RLE at the input image's size.
A task that was not asked for, or whose model output was malformed, leaves its field empty (null / [] / "").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cxrvlm.about import NOTICE

TASKS = ("classify", "report", "detect", "segment", "vqa")
# What is detected and segmented unless asked otherwise: the regions the project's training data outlines.
DETECT_LABELS = ("right lung", "left lung")
SEGMENT_LABELS = ("right lung", "left lung")
KEYS = ("image", "model", "notice", "image_size", "prior", "tb", "findings", "report", "detections",
        "segmentations", "answers", "tasks", "warnings", "timing_ms")


@dataclass
class TBResult:
    probability: float  # P("tuberculosis") among the TB candidates, from the answers' likelihoods
    label: str  # "tuberculosis" when probability >= threshold, else "normal"
    threshold: float
    threshold_source: str  # "operating_point.json" of the model's folder, or "default"


@dataclass
class Finding:
    label: str
    probability: float


@dataclass
class Detection:
    label: str
    box: list[float]  # x1, y1, x2, y2 in pixels of the input image
    score: float  # geometric mean of the probabilities of the box's four <loc> tokens


@dataclass
class Segmentation:
    label: str
    box: list[float]
    mask: dict[str, Any]  # COCO RLE {"size": [h, w], "counts": str} at the input image's size
    score: float  # geometric mean over the object's 4 <loc> and 16 <seg> token probabilities


@dataclass
class Answer:
    question: str
    answer: str
    probability: float | None  # closed: the answer's share of the candidates' likelihood; open: mean token prob
    closed: bool


@dataclass
class Reading:
    image: str
    model: str
    image_size: list[int]
    tasks: list[str]
    prior: str | None = None
    notice: str = NOTICE
    tb: TBResult | None = None
    findings: list[Finding] = field(default_factory=list)
    report: str = ""
    detections: list[Detection] = field(default_factory=list)
    segmentations: list[Segmentation] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timing_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with the keys in `KEYS` order."""
        d = asdict(self)
        return {k: d[k] for k in KEYS}


def check_reading(d: dict[str, Any]) -> list[str]:
    """What is wrong with a reading dict (e.g. one parsed back from JSON), as a list of problems ([] = valid)."""
    problems = [f"missing key {k!r}" for k in KEYS if k not in d]
    if problems:
        return problems
    if d["notice"] != NOTICE:
        problems.append(f"notice is {d['notice']!r}")
    if d["tb"] is not None:
        tb = d["tb"]
        if not 0.0 <= tb.get("probability", -1) <= 1.0 or tb.get("label") not in ("tuberculosis", "normal"):
            problems.append(f"tb is not a probability with a label: {tb}")
    for key, fields in (("findings", ("label", "probability")), ("detections", ("label", "box", "score")),
                        ("segmentations", ("label", "box", "mask", "score")),
                        ("answers", ("question", "answer", "probability", "closed"))):
        if not isinstance(d[key], list):
            problems.append(f"{key} is not a list")
            continue
        problems += [f"{key}[{i}] lacks {f!r}" for i, item in enumerate(d[key]) for f in fields if f not in item]
    for key in ("detections", "segmentations"):
        for i, item in enumerate(d[key] if isinstance(d[key], list) else []):
            box = item.get("box", [])
            if len(box) != 4 or box[2] < box[0] or box[3] < box[1]:
                problems.append(f"{key}[{i}] box {box} is not x1 <= x2, y1 <= y2")
    if not isinstance(d["report"], str) or not isinstance(d["warnings"], list):
        problems.append("report must be a string and warnings a list")
    return problems
