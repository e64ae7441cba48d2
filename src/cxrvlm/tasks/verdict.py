"""One verdict: does a text contradict the label head's calls (the reading's structured verdict)?

The text's statements are read by the rule-based report labeler (`metrics.chexpert_labeler`): the CheXpert
observations the head also has, plus tuberculosis and COVID-19 by phrase. A contradiction is a statement of a label
the head does not call, a label ruled out that the head calls, or "normal" while the head calls a finding; an
uncertain statement ("possible ...") contradicts nothing.

    contradictions("Findings consistent with pulmonary tuberculosis.", head, threshold)
    -> ["the text states tuberculosis; the reading does not call it (probability 0.08)"]
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

from cxrvlm.metrics.chexpert_labeler import label_phrase, label_report
from cxrvlm.tasks import _text, labels

# comparison language: a report of one film that uses it speaks of a prior study nobody gave
_COMPARISON = re.compile(r"\b(compared (with|to)|comparison|(prior|previous) (study|film|radiograph|exam)|since the "
                         r"(prior|previous|last)|interval (change|improvement|worsening|increase|decrease)|unchanged "
                         r"from)\b", re.IGNORECASE)
PHRASES = {labels.TB: "tuberculosis|tuberculous|tb|koch", "COVID-19": "covid 19|covid|sars cov 2|coronavirus"}


def stated(text: str, names: set[str]) -> dict[str, float]:
    """What the text says of each head label it mentions: 1 present, 0 absent, -1 uncertain."""
    found = {k: v for k, v in label_report(text).items() if k in names and not math.isnan(v)}
    for name, pattern in PHRASES.items():
        value = label_phrase(text, pattern) if name in names else math.nan
        if not math.isnan(value):
            found[name] = value  # the labeler reads "normal" when no CheXpert observation is named: not here
            found.pop(_text.NO_FINDING, None)
    return found


def contradictions(text: str, head: Mapping[str, float], tb_threshold: float | None = None) -> list[str]:
    """The text's statements that contradict the head's calls (`labels.called`, TB at the operating point)."""
    called = set(labels.called(head, tb_threshold))
    abnormal = sorted(called - {_text.NO_FINDING}, key=list(head).index)
    out = []
    for name, value in stated(text, set(head)).items():
        p, phrase = head[name], _text.phrase(name)
        if name == _text.NO_FINDING:
            if value == 1.0 and abnormal:
                out.append(f"the text reads normal; the reading calls {_text.join_words(map(_text.phrase, abnormal))}")
        elif value == 1.0 and name not in called:
            out.append(f"the text states {phrase}; the reading does not call it (probability {p:.2f})")
        elif value == 0.0 and name in called:
            out.append(f"the text rules out {phrase}; the reading calls it (probability {p:.2f})")
    return out


def prior_problem(text: str, prior_given: bool) -> list[str]:
    """["the text compares with a prior study; none was given"] when it does, else []."""
    if prior_given or not _COMPARISON.search(text or ""):
        return []
    return ["the text compares with a prior study; none was given"]
