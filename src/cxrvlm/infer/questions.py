"""Which answers a question allows: close-ended questions are scored over their candidates (so the answer comes with
a probability), open ones are generated.

The candidates of the VQA task's own question templates come from `cxrvlm.tasks.vqa`; any other question that
starts like a yes/no question ("Is ...", "Are ...", "Does ...") is scored over yes/no.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from cxrvlm.tasks import _text, vqa

_YES_NO_OPENERS = frozenset("is are does do did has have had can could was were will would should shall may "
                            "might must".split())
_CHOICE_RE = re.compile(re.escape(vqa.Q_CHOICE).replace(r"\{a\}", "(?P<a>.+?)").replace(r"\{b\}", "(?P<b>.+?)") + "$",
                        re.IGNORECASE)
_CHANGE_RE = re.compile(re.escape(vqa.Q_CHANGE).replace(r"\{prior\}", ".+?") + "$", re.IGNORECASE)
DEFAULT_QUESTIONS = (vqa.Q_NORMAL, vqa.Q_LABEL.format(x="tuberculosis"), vqa.Q_VIEW, vqa.Q_LUNG_SIZE)


@dataclass
class Question:
    """A question to ask: `candidates` empty for an open question; `needs_prior` for the change question."""

    text: str
    candidates: list[str] = field(default_factory=list)
    needs_prior: bool = False

    @property
    def closed(self) -> bool:
        return bool(self.candidates)


def closed_candidates(question: str) -> list[str]:
    """The fixed answers of a close-ended question, [] for an open one."""
    q = " ".join(str(question).split())
    fixed = {vqa.Q_VIEW: vqa.PROJECTIONS, vqa.Q_LUNG_SIZE: vqa.SIDES,
             **{s: _text.SEVERITY_LEVELS for s in vqa.Q_SEVERITY.values()}}
    for template, answers in fixed.items():
        if q.lower() == template.lower():
            return list(answers)
    if _CHANGE_RE.match(q):
        return list(_text.CHANGE_ANSWERS)
    m = _CHOICE_RE.match(q)
    if m:
        a, b = _text.normalise(m.group("a")), _text.normalise(m.group("b"))
        return [a, b] if a and b and a != b else []
    words = q.lower().split()
    return list(vqa.YES_NO) if words and words[0] in _YES_NO_OPENERS else []


def make_question(item: str | dict | Question) -> Question:
    """A question string, a {"question": ..., "candidates": [...]} dict or a Question -> Question."""
    if isinstance(item, Question):
        return item
    if isinstance(item, dict):
        if "question" not in item:
            raise ValueError(f"question {item!r}: a dict needs a 'question' key")
        text = vqa.prompt(item["question"])
        given = item.get("candidates")
        candidates = [str(c) for c in given] if given else closed_candidates(text)
    elif isinstance(item, str):
        text = vqa.prompt(item)
        candidates = closed_candidates(text)
    else:
        raise ValueError(f"question {item!r}: expected a string or a dict, got {type(item).__name__}")
    if len(set(candidates)) != len(candidates):
        raise ValueError(f"question {text!r}: candidates repeat: {candidates}")
    return Question(text, candidates, needs_prior=bool(_CHANGE_RE.match(text)))
