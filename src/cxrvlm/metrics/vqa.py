"""Visual question answering metrics: close-ended accuracy; open-ended exact match and token F1 (SQuAD style).

Targets: close-ended `{"answer": str, "candidates": [str, ...]}`; open-ended `{"answer": str}` (or `{"answers":
[str, ...]}`: the best match over the reference answers counts, as in SQuAD). Prediction fields read: `pred.valid`,
`pred.answer` (falling back to `pred.label`). An invalid prediction is counted in `n_invalid` and scores 0.

Answer normalisation (SQuAD v1.1's evaluation script): lower-case, remove punctuation, remove the articles
a / an / the, collapse white space.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Any

from cxrvlm.metrics.common import require
from cxrvlm.examples import Prediction

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str | None) -> str:
    """SQuAD normalisation: "The Left lung." -> "left lung"."""
    if text is None:
        return ""
    s = str(text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str | None, reference: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str | None, reference: str) -> float:
    """F1 of the bag of normalised tokens (SQuAD): 2PR / (P + R) with P = overlap / |pred|, R = overlap / |ref|.

    Both empty -> 1.0; one empty -> 0.0."""
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not p or not r:
        return float(p == r)
    overlap = sum((Counter(p) & Counter(r)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(p), overlap / len(r)
    return 2 * precision * recall / (precision + recall)


def _answer(pred: Prediction) -> str | None:
    if not pred.valid:
        return None
    return pred.answer if pred.answer is not None else pred.label


class ClosedVQAMetric:
    """Accuracy of close-ended answers after normalisation. An answer outside the target's candidates is wrong and
    counted in `n_out_of_set` (a valid parse that still is not one of the allowed answers)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._correct: list[float] = []
        self._n_invalid = 0
        self._n_out_of_set = 0

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        reference = str(require(target, "answer", "ClosedVQAMetric"))
        candidates = {normalize_answer(c) for c in target.get("candidates") or []}
        if candidates and normalize_answer(reference) not in candidates:
            raise ValueError(f"ClosedVQAMetric: target answer {reference!r} is not one of its candidates "
                             f"{target.get('candidates')}")
        answer = _answer(pred)
        if answer is None:
            self._n_invalid += 1
            self._correct.append(0.0)
            return
        if candidates and normalize_answer(answer) not in candidates:
            self._n_out_of_set += 1
        self._correct.append(exact_match(answer, reference))

    def compute(self) -> dict[str, float]:
        n = len(self._correct)
        return {"n": float(n), "n_invalid": float(self._n_invalid), "n_out_of_set": float(self._n_out_of_set),
                "accuracy": sum(self._correct) / n if n else math.nan}


class OpenVQAMetric:
    """Mean exact match and mean token F1 of open-ended answers (best over the reference answers)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._em: list[float] = []
        self._f1: list[float] = []
        self._n_invalid = 0

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        if isinstance(target, dict) and target.get("answers"):
            references = [str(a) for a in target["answers"]]
        else:
            references = [str(require(target, "answer", "OpenVQAMetric"))]
        answer = _answer(pred)
        if answer is None:
            self._n_invalid += 1
            self._em.append(0.0)
            self._f1.append(0.0)
            return
        self._em.append(max(exact_match(answer, r) for r in references))
        self._f1.append(max(token_f1(answer, r) for r in references))

    def compute(self) -> dict[str, float]:
        n = len(self._em)
        return {"n": float(n), "n_invalid": float(self._n_invalid),
                "exact_match": sum(self._em) / n if n else math.nan,
                "token_f1": sum(self._f1) / n if n else math.nan}
