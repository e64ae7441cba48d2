"""Films with another disease and no TB, read as TB: the screening test's false alarms on sick films.

The TB screening cases are TB films and normal films, so their specificity says nothing about a film that is
abnormal for another reason (COVID-19, other pneumonias). The screening task says which films those are and how
its question is asked of them (`Task.other_disease_case`: one per study, on the film of its "finding" example);
here the model scores the TB candidates on each and a film counts as read as TB when P(tuberculosis) reaches the
operating point (the most likely candidate when there is none). The share is reported overall and per source
(`by_source.source_key`); the issue's target is at most 10%.

    rows = score_cases(model, cases(examples), batch_size, cache)
    summary(rows, threshold)   # {"n", "n_read_as_positive", "rate", "mean_probability", "by_source", ...}
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrvlm.eval import predict
from cxrvlm.eval.by_source import example_source
from cxrvlm.examples import Example
from cxrvlm.tasks import screening_task

Row = tuple[Example, dict[str, float]]  # a case and the model's probability of each candidate


def cases(examples: Sequence[Example]) -> list[Example]:
    """The screening question on every film with another disease and not the screened one, one per study."""
    make = screening_task().other_disease_case
    first: dict[str, Example] = {}
    for case in (map(make, examples) if make else ()):
        if case is not None:
            first.setdefault(case.study_id, case)
    return list(first.values())


def score_cases(model: Any, found: Sequence[Example], batch_size: int, cache: Any) -> list[Row]:
    """(case, candidate probabilities) per case; a film that cannot be read is skipped with a warning."""
    return [(ex, probs) for ex, probs in predict.scored(model, found, batch_size, cache, "other-disease films")
            if probs]


def read_as_positive(probs: dict[str, float], threshold: float | None) -> bool:
    """Whether the screening test calls the film positive (`Task.screening_answer`)."""
    task = screening_task()
    return task.screening_answer(probs, threshold) == task.screening[1]


def _share(rows: Sequence[Row], threshold: float | None) -> dict[str, Any]:
    positive = screening_task().screening[1]
    called = sum(read_as_positive(p, threshold) for _, p in rows)
    return {"n": len(rows), "n_read_as_positive": called, "rate": called / len(rows) if rows else None,
            "mean_probability": float(np.mean([p.get(positive, 0.0) for _, p in rows])) if rows else None}


def summary(rows: Sequence[Row], threshold: float | None) -> dict[str, Any]:
    """The share of the films read as positive, overall and per source, with the rule that called them."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[example_source(row[0])].append(row)
    task = screening_task()
    return {"positive": task.screening[1], "question": rows[0][0].prefix if rows else None,
            "threshold": threshold, "rule": "P(positive) >= threshold" if threshold is not None else
            "most likely candidate", **_share(rows, threshold),
            "by_source": {k: _share(groups[k], threshold) for k in sorted(groups)}}
