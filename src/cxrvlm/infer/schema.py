"""The reading as a pydantic model: every field with its meaning, its range and its units, in one place. The CLI
checks readings against it (`result.check_reading`) and the HTTP API publishes it in its OpenAPI schema (`/docs`).

Coordinates: a box is [x1, y1, x2, y2] in pixels of the input image (x to the right, y down, from the top-left
corner; x2, y2 exclusive edges); a point is [x, y]; a size is [height, width].
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cxrvlm.about import NOTICE

Probability = float  # in [0, 1]; each field says what it is the probability of


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "yes" is not a bool, "0.5" not a number


class Quality(_Strict):
    assessable: bool = Field(description="false: no verdict, findings or report; `reasons` say why")
    view: str | None = Field(None, description="what the view gate saw: frontal, lateral, other_body_part, "
                             "not_a_radiograph or inverted; null when it did not run")
    reasons: list[str] = Field(description="why the image is not assessable ([] when it is)")
    view_probabilities: dict[str, float] | None = Field(None, description="the view gate's probability of each kind")


class Verdict(_Strict):
    label: Literal["tuberculosis", "abnormal, not tuberculosis", "no finding called", "not tuberculosis"] = Field(
        description="the one-line verdict; with a label head, TB at the operating point and other findings at 0.5")
    called: list[str] = Field(description="the findings the label head calls present ([] without a head)")
    source: Literal["label head", "decoder"] = Field(description="where the verdict comes from")


class TB(_Strict):
    probability: Probability = Field(ge=0, le=1, description="probability of tuberculosis")
    label: Literal["tuberculosis", "normal"] = Field(description="'tuberculosis' when probability >= threshold")
    threshold: float = Field(ge=0, le=1, description="the operating point (chosen on validation for sensitivity "
                             ">= 0.9, the WHO screening target, unless given)")
    threshold_source: str = Field(description="'argument', 'operating_point.json' (the model's) or 'default'")


class Finding(_Strict):
    label: str
    probability: Probability = Field(ge=0, le=1, description="with a label head, that finding's own probability "
                                     "(calibrated on validation); else its share of the finding answers' likelihood")


class Saliency(_Strict):
    label: str = Field(description="the output the map explains (tuberculosis, or a called finding)")
    method: str = Field(description="how the map was made (class activation map of the label head)")
    grid: list[int] = Field(min_length=2, max_length=2, description="[height, width] of the map in cells")
    png: str = Field(description="the map as a base64 grey PNG of its cells, 0-255 from its lowest to its highest")
    peak: list[float] = Field(min_length=2, max_length=2, description="[x, y] of the hottest cell's centre, in "
                              "pixels of the input image")


class Consistency(_Strict):
    checked_against: str = Field(description="what the generated text was checked against (the label head)")
    contradictions: list[str] = Field(description="what was wrong with the generated report (a call it contradicted, "
                                      "a prior it invented, another patient's words it copied); not empty means "
                                      "the report given is templated from the reading instead")


def _box(value: list[float]) -> list[float]:
    if value[2] < value[0] or value[3] < value[1]:
        raise ValueError(f"box {value} is not x1 <= x2, y1 <= y2")
    return value


class Detection(_Strict):
    label: str
    box: list[float] = Field(min_length=4, max_length=4, description="[x1, y1, x2, y2] in pixels of the input")
    score: Probability = Field(ge=0, le=1, description="probability that the box is right (IoU >= 0.5), calibrated "
                               "on validation when the model ships box_calibration.json; else its tokens' confidence")

    _check_box = field_validator("box")(_box)


class Mask(_Strict):
    size: list[int] = Field(min_length=2, max_length=2, description="[height, width] of the input image")
    counts: str | list[int] = Field(description="COCO run-length encoding")


class Segmentation(_Strict):
    label: str
    box: list[float] = Field(min_length=4, max_length=4, description="[x1, y1, x2, y2] of the mask, in pixels")
    mask: Mask
    score: Probability = Field(ge=0, le=1, description="the mask's tokens' confidence (not calibrated)")

    _check_box = field_validator("box")(_box)


class AnswerValidation(_Strict):
    type: str = Field(description="the question type (view, lung_size, normal, label, choice, extent, density, "
                      "change; source: any other question, as clinicians' own questions in the training data)")
    n: int = Field(gt=0, description="validation questions of this type")
    accuracy: float = Field(ge=0, le=1, description="share answered right")
    constant_accuracy: float | None = Field(None, ge=0, le=1, description="the share one fixed answer (the "
                                            "commonest in training) gets right")
    no_better_than_constant: bool = Field(description="true: the answer does not follow the film; do not rely on it")


class Answer(_Strict):
    question: str
    answer: str
    probability: Probability | None = Field(None, ge=0, le=1, description="closed: the answer's share of the "
                                            "candidates' likelihood, or the label head's; open: its tokens' mean "
                                            "confidence; null when not answered")
    closed: bool
    source: Literal["label head"] | None = Field(None, description="set when the label head's call answered it")
    validation: AnswerValidation | None = Field(None, description="how questions of this type were answered on "
                                                "validation patients (when the model ships question_types.json)")


class Reading(_Strict):
    """One image's reading. A task not asked for, or whose output was malformed, leaves its fields empty."""

    image: str = Field(description="the input, as named")
    model: str
    notice: Literal[NOTICE]  # type: ignore[valid-type]
    image_size: list[int] = Field(min_length=2, max_length=2, description="[height, width] of the input image")
    prior: str | None = Field(description="the prior study's image when one was compared")
    quality: Quality
    verdict: Verdict | None
    tb: TB | None
    findings: list[Finding]
    saliency: list[Saliency]
    report: str = Field(description="findings and impression; templated when `report_source` says so")
    report_source: Literal["", "generated", "templated from the reading", "withheld"]
    consistency: Consistency | None
    detections: list[Detection]
    segmentations: list[Segmentation]
    answers: list[Answer]
    tasks: list[str] = Field(description="the tasks asked for")
    warnings: list[str]
    timing_ms: dict[str, float] = Field(description="milliseconds per stage, and the total")


class ReadingError(_Strict):
    """An input that could not be read: the reason names the file."""

    image: str
    error: str
