"""The operating point of binary TB screening, chosen on validation data and applied unchanged to test data.

WHO's target product profile for TB triage on chest X-rays asks for sensitivity >= 90% (with specificity >= 70%) at
one threshold fixed before the test set is seen: the threshold is the lowest-cost point on the validation ROC that
reaches the sensitivity target, i.e. of those thresholds, the one with the best specificity
(`cxrvlm.metrics.choose_threshold`).

    op = choose_operating_point(model, read_split(data, "val"))      # {"threshold": 0.37, ...}

Reading and writing the point (`operating_point.json`) is `cxrvlm.models.operating_point`'s; the names are
re-exported here for `cxrvlm.eval`.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from cxrvlm.data.images import ImageCache
from cxrvlm.eval import predict
from cxrvlm.examples import Example
from cxrvlm.metrics import auroc, binary_at_threshold, choose_threshold
from cxrvlm.models.operating_point import read_operating_point, write_operating_point
from cxrvlm.tasks import screening_task

log = logging.getLogger(__name__)

__all__ = ["OperatingPointError", "choose_operating_point", "operating_point_from_scores", "read_operating_point",
           "tb_examples", "tb_scores", "write_operating_point"]

WHO_MIN_SENSITIVITY = 0.9


class OperatingPointError(ValueError):
    """No operating point can be chosen: no TB screening example, or no tuberculosis case among them."""


def tb_examples(examples: Sequence[Example]) -> list[Example]:
    """The binary TB screening examples (`Task.screening` of the task that holds it)."""
    task = screening_task()
    return [e for e in examples if task.screening_case(e)]


def tb_scores(model: Any, examples: Sequence[Example], batch_size: int = 8,
              progress: bool = True) -> tuple[list[int], list[float]]:
    """(y: 1 for tuberculosis, score: the model's probability of "tuberculosis") over the TB examples; an example
    whose images cannot be read is skipped with a warning."""
    cases, positive = tb_examples(examples), screening_task().screening[1]
    cache = ImageCache(int(model.config.image_size))
    y, score = [], []
    with tqdm(total=len(cases), desc="operating point", unit="ex", file=sys.stderr, disable=not progress) as bar:
        for ex, probs in predict.scored(model, cases, batch_size, cache, "operating point"):
            bar.update(1)
            if probs is None or positive not in probs:
                continue
            y.append(int(ex.target.get("label") == positive))
            score.append(float(probs[positive]))
    return y, score


def operating_point_from_scores(y: Sequence[int], score: Sequence[float],
                                min_sensitivity: float = WHO_MIN_SENSITIVITY, split: str = "val") -> dict[str, Any]:
    """The threshold reaching `min_sensitivity` with the best specificity, with what it gives on this data."""
    if not y:
        raise OperatingPointError(f"no TB screening example in the {split} split: cannot choose an operating point")
    if sum(y) == 0:
        raise OperatingPointError(f"the {split} split has no tuberculosis case: no sensitivity to reach")
    t = float(choose_threshold(y, score, min_sensitivity))
    r = binary_at_threshold(y, score, t)
    return {"threshold": t, "min_sensitivity": min_sensitivity, "chosen_on": split, "n": len(y),
            "n_positive": int(sum(y)), "sensitivity": r["sensitivity"], "specificity": r["specificity"],
            "auroc": auroc(y, score), "rule": "sensitivity >= min_sensitivity, then the best specificity"}


def choose_operating_point(model: Any, examples: Sequence[Example], batch_size: int = 8,
                           min_sensitivity: float = WHO_MIN_SENSITIVITY, split: str = "val",
                           progress: bool = True) -> dict[str, Any]:
    """Score the split's TB examples with `model` and choose the threshold (see the module docstring)."""
    y, score = tb_scores(model, examples, batch_size, progress)
    op = operating_point_from_scores(y, score, min_sensitivity, split)
    log.info("TB operating point on %s: threshold %.4f (sensitivity %.3f, specificity %.3f, n=%d)", split,
             op["threshold"], op["sensitivity"], op["specificity"], op["n"])
    return op
