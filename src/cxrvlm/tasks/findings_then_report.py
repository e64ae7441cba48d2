"""Findings first, then the report (M4CXR's chain of thought), as two examples on the study's first frontal view:

step 1: "Which of the following findings are present in this chest X-ray? Options: a, b, c."  ->  "a, b" / "none"
        (a model with a label head states it from the head, `text_from_head`: the findings it lists, and the report
        that follows them, are the head's calls, so they cannot contradict the reading's TB verdict and findings)
step 2: step 1's question + "\n" + its answer + "\nBased on the previous conversation, provide a description of
        the findings."  ->  the report (checked as the report task's: `report.check_with_head`).

The options come from fixed families of labels (`FAMILIES`: tuberculosis; the infectious diagnoses; the 13 CheXpert
observations). A family is offered when every one of its labels is known (1 or 0) for the study, so which options
are listed never hints at the answer (a label a source records only when positive would otherwise be listed only
for positive studies); sources following CheXbert's "blank = negative" convention should write 0 for blanks. The
answer lists the positive options in option order, or "none". Made only for studies with a real report or case
notes (a report templated from the labels would just restate step 1) and at least one offered family.

target keys: step 1: "labels" (positive phrases), "candidates" (option phrases), "step" 1; step 2: "report"
(reference text), "kind" ("report"/"case_notes"), "labels", "step" 2.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.report import ReportMetric
from cxrvlm.records import CHEXPERT_14, LABELS, Study
from cxrvlm.tasks import _text, labels
from cxrvlm.tasks.base import Task, register
from cxrvlm.tasks.report import check_with_head as check_report
from cxrvlm.tokens.shape import TEXT

log = logging.getLogger(__name__)

NAME = "findings_then_report"
NONE = "none"
STEP1 = "Which of the following findings are present in this chest X-ray? Options: {options}."
STEP2 = "Based on the previous conversation, provide a description of the findings."
FAMILIES = (
    ("Tuberculosis",),
    ("COVID-19", "Viral Pneumonia", "Bacterial Pneumonia", "Fungal Pneumonia", "Pneumonia"),
    tuple(k for k in CHEXPERT_14 if k != "No Finding"),
)

# Every finding phrase step 1 can answer with; text made only of these is read as a step 1 answer.
OPTION_VOCABULARY = frozenset(_text.phrase(k) for k in (*LABELS, *(k for f in FAMILIES for k in f)))


def options_for(study: Study) -> list[str]:
    """The option labels offered for a study: every family whose labels are all known, in family order."""
    known = study.known_labels()
    out: list[str] = []
    for family in FAMILIES:
        if all(k in known for k in family):
            out += [k for k in family if k not in out]
    return out


def prompt(options: Sequence[str]) -> str:
    """Step 1 prefix for the option labels (names or phrases)."""
    phrases = [_text.phrase(o) for o in options]
    if not phrases or not all(phrases):
        raise ValueError(f"findings_then_report.prompt: needs non-empty options, got {list(options)}")
    return STEP1.format(options=", ".join(phrases))


def report_prompt(options: Sequence[str], step1_answer: str) -> str:
    """Step 2 prefix: the step 1 question, its answer (the model's own at inference), the report request."""
    return f"{prompt(options)}\n{' '.join(step1_answer.split()) or NONE}\n{STEP2}"


def answer(positives: Sequence[str]) -> str:
    return ", ".join(positives) if positives else NONE


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> [step 1, step 2] examples, or [] (see the module docstring). `rng` is unused."""
    view = _text.first_frontal(study)
    report = study.report
    if view is None or not report or report.kind not in ("report", "case_notes"):
        return []
    labels = options_for(study)
    if not labels:
        return []
    options = [_text.phrase(k) for k in labels]
    positives = [_text.phrase(k) for k in labels if study.labels[k] == 1.0]
    step1 = answer(positives)
    meta = {"report_kind": report.kind, "templated": False}
    first = _text.make_example(NAME, study, [view], prompt(options), step1,
                               {"labels": positives, "candidates": options, "step": 1}, {**meta, "step": 1})
    text = _text.report_text(report)
    second = _text.make_example(NAME, study, [view], report_prompt(options, step1), text,
                                {"report": text, "kind": report.kind, "labels": positives, "step": 2},
                                {**meta, "step": 2})
    return [first, second]


def text_from_head(example: Example, head: Mapping[str, float], tb_threshold: float | None = None) -> str | None:
    """Step 1's answer from the label head: the offered options the head calls present (`labels.called`, TB at the
    operating point), in option order, or "none"; None for step 2, or when an option is not among the head's."""
    if example.target.get("step") != 1 or not example.target.get("candidates"):
        return None
    by_phrase = {_text.phrase(k): k for k in head}
    options = [str(c) for c in example.target["candidates"]]
    if not all(o in by_phrase for o in options):
        return None
    present = set(labels.called(head, tb_threshold))
    return answer([o for o in options if by_phrase[o] in present])


def _parse_findings(text: str, candidates: Sequence[str] | None) -> Prediction:
    allowed = {_text.normalise(c) for c in candidates} if candidates else OPTION_VOCABULARY
    items = [_text.normalise(x) for x in text.split(",")]
    if items == [NONE]:
        return Prediction(NAME, text=text, labels=[], answer=NONE, extra={"step": 1})
    bad = [x for x in items if x not in allowed]
    if bad:
        return Prediction(NAME, valid=False, reason=f"finding(s) {[b[:40] for b in bad[:3]]} not among the options",
                          text=text, extra={"step": 1})
    labels = list(dict.fromkeys(items))
    return Prediction(NAME, text=text, labels=labels, answer=", ".join(labels), extra={"step": 1})


def parse(text: str, image_size: tuple[int, int] | None = None, step: int | None = None,
          candidates: Sequence[str] | None = None) -> Prediction:
    """Step 1 text -> `Prediction.labels` (every item must be one of `candidates`, or of `OPTION_VOCABULARY` when
    they are not given; "none" -> []); step 2 text -> `Prediction.text`. Without `step`, text made only of known
    finding phrases (or "none") is read as step 1, anything else as a report. Never raises."""
    limit = _text.MAX_ANSWER_CHARS if step == 1 else _text.MAX_REPORT_CHARS
    reason = _text.check_output(text, max_chars=limit)
    if reason:
        return Prediction(NAME, valid=False, reason=reason, text=text[:limit] if isinstance(text, str) else "")
    if step not in (None, 1, 2):
        return Prediction(NAME, valid=False, reason=f"step must be 1 or 2, got {step!r}", text=text)
    if step == 1:
        return _parse_findings(text, candidates)
    if step is None:
        vocab = OPTION_VOCABULARY | {_text.normalise(c) for c in candidates or ()}
        items = [_text.normalise(x) for x in text.split(",")]
        if items == [NONE] or all(x in vocab for x in items):
            return _parse_findings(text, candidates)
    return Prediction(NAME, text=text.strip(), extra={"step": 2})


class FindingsThenReportMetric:
    """Step 1 scored as multi-label findings (micro precision/recall/F1 over the options), step 2 as a report."""

    def __init__(self, coco: bool = True) -> None:
        self.coco = coco  # pycocoevalcap in the step-2 report metric
        self.report: Any = None  # the report metric, made at the first step 2 case
        self.reset()

    def reset(self) -> None:
        if self.report is not None:
            self.report.reset()
        self.tp = self.fp = self.fn = 0
        self.n_step1 = self.invalid_step1 = self.n_step2 = 0
        self.truths: list[tuple[frozenset, frozenset]] = []  # (options, positives) of each step 1

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        if target.get("step") == 2:
            if self.report is None:
                self.report = ReportMetric(coco=self.coco)
            self.n_step2 += 1
            self.report.update(pred, target)
            return
        truth, got = set(target.get("labels", [])), set(pred.labels) if pred.valid else set()
        self.truths.append((frozenset(target.get("candidates") or truth), frozenset(truth)))
        self.n_step1 += 1
        self.invalid_step1 += not pred.valid
        self.tp += len(truth & got)
        self.fp += len(got - truth)
        self.fn += len(truth - got)

    def compute(self) -> dict[str, float]:
        out = {f"report_{k}": v for k, v in self.report.compute().items()} if self.n_step2 else {}
        if self.n_step1:
            p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
            r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
            out.update({"findings_precision": p, "findings_recall": r,
                        "findings_f1": 2 * p * r / (p + r) if p + r else 0.0,
                        "findings_invalid_rate": self.invalid_step1 / self.n_step1,
                        "findings_majority_f1": self._majority_f1()})
        return out

    def _majority_f1(self) -> float:
        """The F1 of answering every study with the most common answer (within its options): what a model that
        ignores the image scores, the baseline `findings_f1` must beat to show it reads the film."""
        common = Counter(truth for _, truth in self.truths).most_common(1)[0][0]
        tp = fp = fn = 0
        for options, truth in self.truths:
            said = common & options
            tp, fp, fn = tp + len(said & truth), fp + len(said - truth), fn + len(truth - said)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def metric(threshold: float | None = None, fast: bool = False) -> FindingsThenReportMetric:
    """Step 1 as multi-label findings, step 2 as a report (`fast`: without pycocoevalcap)."""
    return FindingsThenReportMetric(coco=not fast)


def study_images(example: Example) -> tuple:
    """A chain's two steps share the study and its images: they are sampled and evaluated as one unit."""
    return example.study_id, tuple(example.images)


def chain_prompt(example: Example, step1_text: str) -> str | None:
    """The step-2 prefix that carries the model's own step-1 answer (the chain as deployed); None unless
    `example` is a step 1 with its options."""
    if example.target.get("step") != 1 or not example.target.get("candidates"):
        return None
    return report_prompt(list(example.target["candidates"]), step1_text)


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=192,  # step 2 is a report
    headline=("findings_f1", "report_bleu_4"),
    answer_shape=TEXT, coordinates=False,
    parse_hints=("step", "candidates"), keep_together=study_images, chain_prompt=chain_prompt,
    text_from_head=text_from_head,
    check_with_head=check_report))  # step 2 (step 1 is stated from the head, not generated)
