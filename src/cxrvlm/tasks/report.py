"""Report generation. Prefix (PaliGemma-CXR) "Generate a medical report for the X-ray image provided", suffix the
report text ("Findings: ... Impression: ...").

Which text:
- the source's report (`Report.kind == "report"`);
- case notes (`kind == "case_notes"`, e.g. the COVID-19 collection's clinical notes), with their own prompt
  "Write the case notes for the X-ray image provided": case notes also tell history and outcome that no image shows,
  so the model must not learn to mix them into radiology reports;
- otherwise a report templated from the structured findings (positive/negative labels, finding boxes' side,
  severity scores), phrasing chosen by `rng`, `meta["templated"] = True`. Only facts in the data are stated:
  "normal" only when "No Finding" is positive; a negative label only as "no radiographic evidence of ...".

Which images (one example each):
- "single": the first frontal view (the first view when there is no frontal one);
- "multi_view": frontal + lateral, when the study has both;
- "multi_study": current frontal + the prior's frontal, the interval in the prompt ("... compared with the prior
  study from 12 days earlier"). For a templated report only when the change in opacity is known, which the report
  then states (see `_text.opacity_change`).

target keys: "report" (reference text), "kind" ("report", "case_notes" or "templated"), "positives" (positive
label phrases, for clinical-efficacy scoring).
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.memorisation import CopyGuard
from cxrvlm.metrics.report import ReportMetric
from cxrvlm.records import Report, Study, View
from cxrvlm.tasks import _text, labels, verdict
from cxrvlm.tasks.base import ReadContext, Task, register
from cxrvlm.tokens.shape import TEXT

NAME = "report"
KINDS = ("report", "case_notes", "templated")
_OPENING = {"report": "Generate a medical report for", "case_notes": "Write the case notes for"}
_NORMAL_FINDINGS = (
    "The lungs are clear. No pleural effusion or pneumothorax. The cardiomediastinal silhouette is normal.",
    "No focal consolidation, pleural effusion or pneumothorax. Heart size is normal.",
    "Clear lungs. Normal heart size and mediastinal contours. No acute abnormality.",
)
_NORMAL_IMPRESSION = ("Normal chest radiograph.", "No acute cardiopulmonary abnormality.")
_POSITIVE = ("There is radiographic evidence of {x}.", "The radiograph shows features of {x}.",
             "Appearances are in keeping with {x}.")
_IMPRESSION = ("Findings consistent with {x}.", "Appearances suggest {x}.")
_REPORT_PHRASE = {"tuberculosis": "pulmonary tuberculosis"}


def prompt(kind: str = "report", lateral: bool = False, prior_interval_days: float | None = None) -> str:
    """The prefix for a report of `kind` over a frontal image (+ a lateral one, or + a prior study's image)."""
    if kind not in KINDS:
        raise ValueError(f"report.prompt: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    opening = _OPENING["case_notes" if kind == "case_notes" else "report"]  # templated reads as a report
    if lateral and prior_interval_days is not None:
        raise ValueError("report.prompt: a lateral view and a prior study in one prompt are not supported")
    if lateral:
        return f"{opening} the frontal and lateral X-ray images provided"
    if prior_interval_days is not None:
        return (f"{opening} the current X-ray image (first image) compared with "
                f"{_text.interval_phrase(prior_interval_days)} (second image)")
    return f"{opening} the X-ray image provided"


def _report_phrase(label: str) -> str:
    """Label -> its wording in a report: "Streptococcus" -> "streptococcus pneumonia" (a cause names a pneumonia)."""
    p = _text.phrase(label)
    if label in _text.PARENT and "pneumonia" not in p:
        return f"{p} pneumonia"
    return _REPORT_PHRASE.get(p, p)


def _box_sides(view: View | None) -> list[str]:
    """'cardiomegaly in the left hemithorax' for finding boxes clearly on one side (patient's side: the image's
    left is the patient's right on a frontal view)."""
    if view is None or not view.is_frontal:
        return []
    out = []
    for b in view.boxes:
        if _text.is_anatomy(b.label):
            continue
        cx = (b.x1 + b.x2) / 2
        side = "right" if cx < 0.45 else "left" if cx > 0.55 else None
        if side and f"{_report_phrase(b.label)} in the {side} hemithorax" not in out:
            out.append(f"{_report_phrase(b.label)} in the {side} hemithorax")
    return out


def _severity_sentence(study: Study) -> str:
    ge, op = _text.get_score(study, "geographic_extent"), _text.get_score(study, "opacity")
    parts = []
    if ge is not None:
        parts.append(f"{_text.severity_level('geographic_extent', ge)} in extent (geographic extent {ge:.1f} of 8)")
    if op is not None:
        parts.append(f"{_text.severity_level('opacity', op)} in density (opacity {op:.1f} of 6)")
    return f"Lung opacity is {' and '.join(parts)}." if parts else ""


def templated_report(study: Study, view: View | None, rng: random.Random) -> Report | None:
    """A report stating only the study's structured findings; None when the study has none."""
    leaves = [k for k in _text.leaf_positives(study) if k != _text.NO_FINDING]
    severity = _severity_sentence(study)
    if leaves:
        x = _text.join_words([_report_phrase(k) for k in leaves])
        findings = [rng.choice(_POSITIVE).format(x=x)]
        sides = _box_sides(view)
        if sides:
            findings.append(f"There is {_text.join_words(sides)}.")
        impression = rng.choice(_IMPRESSION).format(x=x)
    elif study.labels.get(_text.NO_FINDING) == 1.0:
        findings, impression = [rng.choice(_NORMAL_FINDINGS)], rng.choice(_NORMAL_IMPRESSION)
    elif _text.known_negatives(study):
        x = _text.join_words([_report_phrase(k) for k in _text.known_negatives(study)], "or")
        findings, impression = [f"No radiographic evidence of {x}."], f"No radiographic evidence of {x}."
    elif severity:
        findings, impression = [], ""
    else:
        return None
    if severity:
        findings.append(severity)
    return Report(findings=" ".join(findings), impression=impression, kind="templated")


def stated_report(called: Sequence[str]) -> str:
    """A report templated from the label head's calls (`labels.called`): the narrowest diagnoses called (COVID-19
    rather than viral pneumonia), or the first normal wording when nothing but "No Finding" is called."""
    leaves = [k for k in called if k != _text.NO_FINDING and k not in {_text.PARENT.get(c) for c in called}]
    if leaves:
        x = _text.join_words([_report_phrase(k) for k in leaves])
        return f"Findings: {_POSITIVE[0].format(x=x)} Impression: {_IMPRESSION[0].format(x=x)}"
    if _text.NO_FINDING in called:
        return f"Findings: {_NORMAL_FINDINGS[0]} Impression: {_NORMAL_IMPRESSION[0]}"
    return "Findings: No finding is called with confidence. Impression: Indeterminate; review the film."


def check_with_head(text: str, head: Mapping[str, float], tb_threshold: float | None,
                    prior_given: bool = False, guard: CopyGuard | None = None) -> tuple[str, list[str]]:
    """The generated report checked against the label head's calls, the inputs and the training text: (it, []) when
    nothing is wrong with it, else (the report stated from the calls, what was wrong: a call it contradicts, a prior
    study it compares with when none was given, words it copies from one training patient's text)."""
    found = verdict.contradictions(text, head, tb_threshold) + verdict.prior_problem(text, prior_given)
    found += copy_problem(text, guard)
    return (text, []) if not found else (stated_report(labels.called(head, tb_threshold)), found)


def copy_problem(text: str, guard: CopyGuard | None) -> list[str]:
    """[the problem] when the text holds a run of words only one training report or case note holds (another
    patient's history, not a stock phrase), else []. The words themselves are not repeated: they are that patient's."""
    if guard is None or not guard.copied(text):
        return []
    return [f"copies a run of {guard.n} or more words that only one training patient's text holds"]


def _reference(study: Study, view: View | None, rng: random.Random) -> Report | None:
    if study.report and study.report.kind in ("report", "case_notes"):
        return study.report
    return templated_report(study, view, rng)


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> report examples: single image, frontal + lateral, current + prior (see the module docstring)."""
    frontal = _text.first_frontal(study)
    main = frontal or next(iter(_text.usable_views(study)), None)
    if main is None:
        return []
    ref = _reference(study, main, rng)
    if ref is None:
        return []
    kind = ref.kind if ref.kind in KINDS else "templated"
    text = _text.report_text(ref)
    target = {"report": text, "kind": kind, "positives": [_text.phrase(k) for k in study.positive_labels()]}
    meta = {"report_kind": kind, "templated": kind == "templated"}
    out = [_text.make_example(NAME, study, [main], prompt(kind), text, target, {**meta, "inputs": "single"})]
    lateral = _text.first_lateral(study)
    if frontal is not None and lateral is not None:
        out.append(_text.make_example(NAME, study, [frontal, lateral], prompt(kind, lateral=True), text,
                                      target, {**meta, "inputs": "multi_view"}))
    out.extend(_prior_example(study, frontal, ref, target, meta))
    return out


def _prior_example(study: Study, frontal: View | None, ref: Report, target: dict[str, Any],
                   meta: dict[str, Any]) -> list[Example]:
    prior_view = _text.first_frontal(study.prior)
    if frontal is None or prior_view is None or study.prior_interval_days is None:
        return []
    text = target["report"]
    if meta["templated"]:
        change = _text.opacity_change(study)
        if change is None:
            return []
        wording = "is unchanged" if change == "stayed the same" else f"has {change}"
        impression = f"{ref.impression} Compared with the prior study, the lung opacity {wording}.".strip()
        text = Report(ref.findings, impression, "templated").text
        target = {**target, "report": text}
    return [_text.make_example(NAME, study, [frontal], prompt(meta["report_kind"],
                               prior_interval_days=study.prior_interval_days), text, target,
                               {**meta, "inputs": "multi_study"}, prior_views=[prior_view])]


def parse(text: str, image_size: tuple[int, int] | None = None) -> Prediction:
    """Model text -> `Prediction.text` (stripped), with `extra["findings"]` / `extra["impression"]` split at the
    section headers. Invalid when empty, runaway (> 20,000 characters), or holding control or loc/seg tokens."""
    reason = _text.check_output(text, max_chars=_text.MAX_REPORT_CHARS)
    if reason:
        return Prediction(NAME, valid=False, reason=reason, text=text[:_text.MAX_REPORT_CHARS]
                          if isinstance(text, str) else "")
    body = text.strip()
    findings, _, impression = body.partition("Impression:")
    findings = findings.replace("Findings:", "", 1).strip()
    return Prediction(NAME, text=body, extra={"findings": findings, "impression": impression.strip()})


def metric(threshold: float | None = None, fast: bool = False) -> ReportMetric:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr and label F1 of generated against reference reports. `fast` leaves out
    pycocoevalcap (its METEOR starts a JVM: ~20 s per call on 2 cores); sacreBLEU and the per-sample BLEU stay."""
    return ReportMetric(coco=not fast)


def _read_prompt(ctx: ReadContext) -> tuple[str, bool]:
    """(prefix, whether it reads both views): with a lateral view, or a prior whose interval is known."""
    if ctx.second == "lateral":
        return prompt("report", lateral=True), True
    if ctx.second == "prior" and ctx.prior_days is not None:
        return prompt("report", prior_interval_days=float(ctx.prior_days)), True
    return prompt("report"), False


def wants_pair(ctx: ReadContext) -> bool:
    return _read_prompt(ctx)[1]


def read(ctx: ReadContext) -> dict[str, Any]:
    """The generated report ("" with a warning when the output is malformed), checked against the label head where
    the model has one: a report that contradicts the head's calls, invents a prior or copies one training patient's
    words (the model folder's copy guard) is replaced by one templated from the calls (withheld without a head), and
    `report_source` says which it is; `consistency` lists what the generated report contradicted."""
    if ctx.second == "prior" and ctx.prior_days is None:
        ctx.warn(f"{NAME}: the prior was not compared (its interval is unknown; give prior_days)")
    prefix, pair = _read_prompt(ctx)
    text, _ = ctx.generate(prefix, TASK.budget(), TASK.answer_shape, pair=pair)
    pred = parse(text)
    if not pred.valid:
        ctx.warn(_text.output_warning(NAME, pred.reason, text))
        return {"report": ""}
    head = ctx.labels()
    if not head:
        copied = copy_problem(pred.text, ctx.options.copy_guard)
        if copied:  # no head to state a report from instead: withheld
            ctx.warn(f"{NAME}: withheld, it {copied[0]}")
            return {"report": "", "report_source": "withheld"}
        return {"report": pred.text, "report_source": "generated"}
    given, found = check_with_head(pred.text, head, ctx.options.threshold, ctx.second == "prior",
                                   ctx.options.copy_guard)
    return {"report": given, "report_source": "templated from the reading" if found else "generated",
            "consistency": {"checked_against": "label head", "contradictions": found}}


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=192,  # Open-i reports are ~50 BPE tokens (p99 ~130); case notes are longer
    headline=("bleu_4", "sacrebleu", "bleu_per_sample_lowercase"),
    answer_shape=TEXT, coordinates=False,
    reading={"report": "", "report_source": "", "consistency": None}, read=read, wants_pair=wants_pair,
    check_with_head=check_with_head))
