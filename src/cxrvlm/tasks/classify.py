"""Classification: TB diagnosis and finding classification, answered with one word from a fixed candidate set.

Two kinds of example, each on one frontal view (the first one with a path):
- "tb" (PaliGemma-CXR): prefix "What is the diagnosis of the X-ray image?", suffix "tuberculosis" or "normal".
  Made when the study's "Tuberculosis" label is known. A TB-negative study with another positive finding (sick but
  not TB, as in TBX11K) gets no "tb" example: "normal" would be false and the set has no third answer.
- "finding": prefix "What is the diagnosis of the X-ray image? Options: no finding, tuberculosis, covid-19, ...",
  over the fixed set `FINDING_CANDIDATES` (the same prompt for every study of every source). Each positive label
  is mapped to the narrowest candidate it implies (SARS -> viral pneumonia, Streptococcus -> bacterial pneumonia,
  see `_text.PARENT`); candidates implied by a narrower one are dropped (COVID-19 implies viral pneumonia and
  pneumonia). Made when exactly one candidate is left: no diagnosis in the set (e.g. cardiomegaly only) or two
  (a co-infection) leave the single answer undetermined, and the study gets no "finding" example. Labels outside
  the set (ARDS beside COVID-19) do not count.

Class probabilities come from the decoder's likelihood of each candidate (inference puts them in
`Prediction.extra["probs"]`), so AUROC is computable.

Evaluation also asks the TB question of the film of every "finding" example whose study has another disease and
no TB (`other_disease_case`, kind "other_disease", no label): how often a sick film is read as TB.

target keys: "label" (answer phrase), "candidates" (list of phrases, the fixed set of its kind), "positives" (every
positive label's phrase), "kind" ("tb" or "finding"). `metric()` scores each kind with its own candidate set.
"""
from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.classification import FAST_N_BOOT, ClassificationMetric
from cxrvlm.records import Study, View
from cxrvlm.tasks import _text, labels, saliency
from cxrvlm.tasks.base import ReadContext, Task, register
from cxrvlm.tokens.shape import TEXT

log = logging.getLogger(__name__)

NAME = "classify"
TB_LABEL = "Tuberculosis"
TB_PROMPT = "What is the diagnosis of the X-ray image?"
TB_KIND, TB_POSITIVE = "tb", "tuberculosis"
TB_CANDIDATES = ("normal", TB_POSITIVE)
FINDING_PROMPT = TB_PROMPT + " Options: {options}."
FINDING_CANDIDATES = ("no finding", "tuberculosis", "covid-19", "viral pneumonia", "bacterial pneumonia",
                      "fungal pneumonia", "pneumonia")
# Every answer the task can produce; parse accepts these when it is not given the prompt's candidates.
ALL_CANDIDATES = frozenset(TB_CANDIDATES) | frozenset(FINDING_CANDIDATES)


def prompt(kind: str = "tuberculosis") -> str:
    """The prefix: `prompt("tuberculosis")` for TB screening, `prompt("finding")` for the diagnosis set."""
    if kind in ("tuberculosis", "tb"):
        return TB_PROMPT
    if kind == "finding":
        return FINDING_PROMPT.format(options=", ".join(FINDING_CANDIDATES))
    raise ValueError(f"classify.prompt: unknown kind {kind!r}; valid: 'tuberculosis', 'finding'")


def answer_set(kind: str = "tuberculosis") -> list[str]:
    """The fixed answer set of a kind (for scoring each candidate's likelihood)."""
    prompt(kind)  # validates kind
    return list(TB_CANDIDATES if kind in ("tuberculosis", "tb") else FINDING_CANDIDATES)


def _candidate_chain(label: str) -> list[str]:
    """The finding candidates a label implies, narrowest first: "SARS" -> ["viral pneumonia", "pneumonia"]."""
    out: list[str] = []
    name: str | None = label
    while name is not None:
        p = _text.phrase(name)
        if p in FINDING_CANDIDATES and p not in out:
            out.append(p)
        name = _text.PARENT.get(name)
    return out


def finding_answer(study: Study) -> str | None:
    """The study's single diagnosis among FINDING_CANDIDATES, or None when it is not determined."""
    positives = [k for k in study.positive_labels() if k != _text.NO_FINDING]
    if not positives:
        return "no finding" if study.labels.get(_text.NO_FINDING) == 1.0 else None
    chains = [c for c in map(_candidate_chain, positives) if c]
    left = {c[0] for c in chains} - {x for c in chains for x in c[1:]}
    return left.pop() if len(left) == 1 else None


def _tb_example(study: Study, view: View) -> Example | None:
    tb = study.labels.get(TB_LABEL)
    if tb not in (0.0, 1.0):
        return None
    others = [k for k in _text.leaf_positives(study) if k not in (TB_LABEL, _text.NO_FINDING)]
    if tb == 0.0 and others:
        log.debug("classify: %s is TB-negative but shows %s; no 'normal' answer", study.study_id, others)
        return None
    answer = "tuberculosis" if tb == 1.0 else "normal"
    target = {"label": answer, "candidates": list(TB_CANDIDATES), "kind": "tb",
              "positives": [_text.phrase(k) for k in study.positive_labels()]}
    return _text.make_example(NAME, study, [view], TB_PROMPT, answer, target, {"kind": "tb"})


def _finding_example(study: Study, view: View) -> Example | None:
    answer = finding_answer(study)
    if answer is None:
        return None
    target = {"label": answer, "candidates": list(FINDING_CANDIDATES), "kind": "finding",
              "positives": [_text.phrase(k) for k in study.positive_labels()]}
    return _text.make_example(NAME, study, [view], prompt("finding"), answer, target, {"kind": "finding"})


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> up to two classification examples (tb, finding) on its first frontal view. `rng` is unused: the
    answer is fully determined by the labels."""
    view = _text.first_frontal(study)
    if view is None:
        return []
    made = [_tb_example(study, view), _finding_example(study, view)]
    return [e for e in made if e is not None]


OTHER_DISEASE_KIND = "other_disease"


def other_disease_case(example: Example) -> Example | None:
    """The TB question asked of the film of a "finding" example whose study is TB-negative or unknown and has
    another disease (a positive label other than tuberculosis and no finding): the screening test's false alarms,
    which `format` makes no "tb" example of ("normal" would be false). Same images and ids; target kind
    "other_disease", the TB candidates and the study's positives, no label (the truth is "not tuberculosis").
    None for any other example."""
    if example.task != NAME or example.target.get("kind") != "finding":
        return None
    positives = set(example.target.get("positives") or ())
    if TB_POSITIVE in positives or not positives - {_text.phrase(_text.NO_FINDING)}:
        return None
    target = {"kind": OTHER_DISEASE_KIND, "candidates": list(TB_CANDIDATES), "positives": sorted(positives)}
    return Example(task=NAME, images=list(example.images), prefix=TB_PROMPT, suffix="", study_id=example.study_id,
                   patient_id=example.patient_id, source=example.source, target=target,
                   meta={**example.meta, "kind": OTHER_DISEASE_KIND})


def parse(text: str, image_size: tuple[int, int] | None = None,
          candidates: Sequence[str] | None = None) -> Prediction:
    """Model text -> `Prediction.label`, one of `candidates` (or of every answer the task knows) after case,
    whitespace and punctuation normalisation; anything else is invalid. Never raises."""
    reason = _text.check_output(text)
    if reason:
        return Prediction(NAME, valid=False, reason=reason, text=text if isinstance(text, str) else "")
    allowed = {_text.normalise(c) for c in candidates} if candidates else ALL_CANDIDATES
    label = _text.normalise(text)
    if label not in allowed:
        shown = label if len(label) <= 60 else label[:60] + "..."
        return Prediction(NAME, valid=False, reason=f"answer {shown!r} is not one of the candidates", text=text)
    return Prediction(NAME, text=text, label=label, answer=label)


class ClassifyMetric:
    """Each kind scored over its own candidate set: "tb" as a binary screening test (positive "tuberculosis",
    operating point, sensitivity/specificity), "finding" over FINDING_CANDIDATES (macro one-vs-rest AUROC).
    Keys are prefixed "tb_" / "finding_"; a kind with no case is left out."""

    def __init__(self, threshold: float | None = None, **kwargs: Any) -> None:
        self.by_kind = {
            "tb": ClassificationMetric(TB_CANDIDATES, positive="tuberculosis", threshold=threshold, **kwargs),
            "finding": ClassificationMetric(FINDING_CANDIDATES, **kwargs),
        }
        self.reset()

    def reset(self) -> None:
        self.seen = {k: 0 for k in self.by_kind}
        for m in self.by_kind.values():
            m.reset()

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        kind = target.get("kind", "tb")
        if kind not in self.by_kind:
            raise ValueError(f"classify metric: target kind {kind!r} is not 'tb' or 'finding'")
        self.seen[kind] += 1
        self.by_kind[kind].update(pred, target)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, m in self.by_kind.items():
            if self.seen[kind]:
                out.update({f"{kind}_{k}": v for k, v in m.compute().items()})
        return out


def metric(threshold: float | None = None, fast: bool = False) -> ClassifyMetric:
    """Accuracy, per-class sensitivity/specificity/F1 and AUROC with bootstrap CIs; `threshold` is the TB operating
    point fixed on validation data; `fast` takes fewer bootstrap resamples (quick runs, tests)."""
    return ClassifyMetric(threshold=threshold, **({"n_boot": FAST_N_BOOT} if fast else {}))


def candidates(example: Example) -> list[str]:
    """Every classification example is close-ended: its candidates, scored by likelihood."""
    cands = example.target.get("candidates") or []
    return [str(c) for c in dict.fromkeys(cands)] if len(cands) >= 2 else []


def _tb_from_head(head: Mapping[str, float]) -> dict[str, float] | None:
    p = head.get(TB_LABEL)
    return None if p is None or not math.isfinite(p) else {"normal": 1.0 - float(p), TB_POSITIVE: float(p)}


def from_head(example: Example, head: Mapping[str, float],
              tb_threshold: float | None = None) -> dict[str, float] | None:
    """TB questions (screening cases and the other-disease films) from the label head's TB output (the evaluation
    calls it at the operating point itself); the finding question stays with the decoder (its answer set is
    exclusive, the head's labels are not)."""
    if example.target.get("kind") in (TB_KIND, OTHER_DISEASE_KIND):
        return _tb_from_head(head)
    return None


VERDICTS = ("tuberculosis", "abnormal, not tuberculosis", "no finding called", "not tuberculosis")


def verdict(head: Mapping[str, float] | None, tb_label: str, tb_threshold: float | None) -> dict[str, Any]:
    """The reading's one-line verdict: with a label head, "tuberculosis" when TB is called, "abnormal, not
    tuberculosis" when only other findings are, else "no finding called", with the findings called; without one,
    "tuberculosis" or "not tuberculosis" (the decoder's findings are a choice among answers, not calls);
    `source` says which."""
    if not head:
        return {"label": VERDICTS[0] if tb_label == TB_POSITIVE else VERDICTS[3], "called": [], "source": "decoder"}
    called = [k for k in labels.called(head, tb_threshold) if k != _text.NO_FINDING]
    label = VERDICTS[0] if TB_LABEL in called else VERDICTS[1] if called else VERDICTS[2]
    return {"label": label, "called": [_text.phrase(k) for k in called], "source": "label head"}


def read(ctx: ReadContext) -> dict[str, Any]:
    """The verdict (`verdict`), the TB screening probability and label at the operating point, and the finding
    probabilities, most likely first: from the label head when the model has one (every label of its space, each its
    own probability), else from the decoder's likelihood of each answer."""
    head = ctx.labels()
    probs = _tb_from_head(head) if head else None
    if probs is None:
        cands = answer_set("tuberculosis")
        probs = dict(zip(cands, map(float, ctx.score(prompt("tuberculosis"), cands))))
    tb = {"probability": round(probs[TB_POSITIVE], 6), "label": TASK.screening_answer(probs, ctx.options.threshold),
          "threshold": ctx.options.threshold, "threshold_source": ctx.options.threshold_source}
    if head:
        found = sorted(((_text.phrase(k), v) for k, v in head.items() if k != TB_LABEL), key=lambda cp: -cp[1])
    else:
        cands = answer_set("finding")
        found = sorted(zip(cands, ctx.score(prompt("finding"), cands)), key=lambda cp: -cp[1])
    maps = ctx.label_maps() if head else None
    return {"verdict": verdict(head, tb["label"], ctx.options.threshold), "tb": tb,
            "findings": [{"label": c, "probability": round(float(q), 6)} for c, q in found],
            "saliency": saliency.entries(maps, list(head), head, ctx.options.threshold, ctx.image_size)
            if maps is not None else []}


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=8,  # one answer phrase
    headline=("tb_auroc", "finding_auroc", "tb_accuracy", "finding_accuracy"),
    answer_shape=TEXT,  # plain text: greedy decoding never writes a <loc> or <seg> token
    coordinates=False,  # left/right words survive small shifts, turns and zooms
    parse_hints=("candidates",), candidates=candidates, screening=(TB_KIND, TB_POSITIVE),
    other_disease_case=other_disease_case, from_head=from_head, reading={"verdict": None, "tb": None, "findings": [],
                                                                      "saliency": []},
    read=read))
