"""Property tests (Hypothesis): every task's `parse` takes any model text, random characters mixed with real special
tokens, labels and separators, and gives a `Prediction` with a bool `valid`: it never raises."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxrvlm.examples import Prediction
from cxrvlm.tasks import classify, detect, findings_then_report, ground, report, segment, vqa

LABELS = ["right lung", "left lung", "heart", "cardiomegaly", "tuberculosis", "none", "yes", "no"]
PIECES = st.one_of(
    st.text(max_size=12),
    st.integers(0, 1023).map(lambda i: f"<loc{i:04d}>"),
    st.integers(0, 127).map(lambda i: f"<seg{i:03d}>"),
    st.sampled_from([" ; ", ";", " ", "\n", "<loc", "<seg12", "<loc99999>", "<seg128>", "Findings:", "Impression:",
                     "Comparison:", ".", ",", "\x00", "\u202e", "<eos>", "<pad>", *LABELS]),
)
# whole objects too, so well-formed boxes and masks (and their near misses) are common, not one in a million
OBJECTS = st.tuples(st.lists(st.integers(0, 1023), min_size=3, max_size=5),
                    st.lists(st.integers(0, 127), min_size=15, max_size=17), st.sampled_from(LABELS)).map(
    lambda o: "".join(f"<loc{i:04d}>" for i in o[0]) + "".join(f"<seg{i:03d}>" for i in o[1]) + " " + o[2])
TEXT = st.lists(st.one_of(PIECES, OBJECTS), max_size=24).map("".join)
SIZES = st.one_of(st.none(), st.tuples(st.integers(1, 300), st.integers(1, 300)))
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(pred: object, task: str) -> None:
    assert isinstance(pred, Prediction) and pred.task == task
    assert isinstance(pred.valid, bool) and isinstance(pred.reason, str)
    assert pred.valid or pred.reason  # an invalid parse says why
    for label, box in pred.boxes:
        assert isinstance(label, str) and len(box) == 4 and all(np.isfinite(v) for v in box)


@BOUNDED
@given(text=TEXT, size=SIZES)
def test_classify(text: str, size: tuple[int, int] | None) -> None:
    _check(classify.parse(text, size), classify.NAME)
    _check(classify.parse(text, size, candidates=["yes", "no"]), classify.NAME)


@BOUNDED
@given(text=TEXT, candidates=st.one_of(st.none(), st.lists(st.sampled_from(LABELS), min_size=1, max_size=3)))
def test_vqa(text: str, candidates: list[str] | None) -> None:
    _check(vqa.parse(text, candidates=candidates), vqa.NAME)


@BOUNDED
@given(text=TEXT)
def test_report(text: str) -> None:
    _check(report.parse(text), report.NAME)


@BOUNDED
@given(text=TEXT, step=st.sampled_from([None, 1, 2]))
def test_findings_then_report(text: str, step: int | None) -> None:
    _check(findings_then_report.parse(text, step=step), findings_then_report.NAME)
    _check(findings_then_report.parse(text, step=step, candidates=LABELS[:4]), findings_then_report.NAME)


@BOUNDED
@given(text=TEXT, size=SIZES, labels=st.one_of(st.none(), st.lists(st.sampled_from(LABELS), max_size=3)))
def test_detect(text: str, size: tuple[int, int] | None, labels: list[str] | None) -> None:
    pred = detect.parse(text, size, labels=labels)
    _check(pred, detect.NAME)
    if size is not None and pred.boxes:
        assert len(pred.extra["boxes_px"]) == len(pred.boxes)


@BOUNDED
@given(text=TEXT, size=SIZES)
def test_ground(text: str, size: tuple[int, int] | None) -> None:
    _check(ground.parse(text, size), ground.NAME)


@BOUNDED
@given(text=TEXT, size=SIZES, labels=st.one_of(st.none(), st.lists(st.sampled_from(LABELS), max_size=3)))
def test_segment(text: str, size: tuple[int, int] | None, labels: list[str] | None) -> None:
    pred = segment.parse(text, size, labels=labels)
    _check(pred, segment.NAME)
    for _, _, mask in pred.masks:
        assert mask is None if size is None else mask.dtype == bool
