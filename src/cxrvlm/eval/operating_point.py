"""The operating point of binary TB screening, chosen on validation data and applied unchanged to test data.

WHO's target product profile for TB triage on chest X-rays asks for sensitivity >= 90% (with specificity >= 70%) at
one threshold fixed before the test set is seen: the threshold is the lowest-cost point on the validation ROC that
reaches the sensitivity target, i.e. of those thresholds, the one with the best specificity
(`cxrvlm.metrics.choose_threshold`).

    op = choose_operating_point(model, read_split(data, "val"))      # {"threshold": 0.37, ...}
    write_operating_point(op, out / "operating_point.json"); read_operating_point(path)["threshold"]
"""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrvlm.eval import predict
from cxrvlm.examples import Example

log = logging.getLogger(__name__)

TB_KIND, TB_POSITIVE = "tb", "tuberculosis"
WHO_MIN_SENSITIVITY = 0.9


class OperatingPointError(ValueError):
    """No operating point can be chosen (no TB cases, no positives) or a file does not hold one."""


def tb_examples(examples: Sequence[Example]) -> list[Example]:
    """The binary TB screening examples (classify, kind "tb")."""
    return [e for e in examples if e.task == "classify" and e.target.get("kind") == TB_KIND]


def tb_scores(model: Any, examples: Sequence[Example], batch_size: int = 8,
              progress: bool = True) -> tuple[list[int], list[float]]:
    """(y: 1 for tuberculosis, score: the model's probability of "tuberculosis") over the TB examples; an example
    whose images cannot be read is skipped with a warning."""
    from tqdm.auto import tqdm

    from cxrvlm.data.images import ImageCache

    cases = tb_examples(examples)
    cache = ImageCache(int(model.config.image_size))
    y, score = [], []
    bar = tqdm(total=len(cases), desc="operating point", unit="ex", file=sys.stderr, disable=not progress)
    for start in range(0, len(cases), batch_size):
        chunk, views = [], []
        for ex in cases[start:start + batch_size]:
            try:
                views.append(cache.views(ex))
                chunk.append(ex)
            except (ValueError, OSError) as e:
                log.warning("operating point: skipping %s: %s", ex.study_id, e)
        if chunk:
            out = predict.run_batch(model, chunk, views, [e.prefix for e in chunk], 1, generate=False)
            for ex, probs in zip(chunk, out.probs):
                if probs is None or TB_POSITIVE not in probs:
                    continue
                y.append(int(ex.target.get("label") == TB_POSITIVE))
                score.append(float(probs[TB_POSITIVE]))
        bar.update(len(cases[start:start + batch_size]))
    bar.close()
    return y, score


def operating_point_from_scores(y: Sequence[int], score: Sequence[float],
                                min_sensitivity: float = WHO_MIN_SENSITIVITY, split: str = "val") -> dict[str, Any]:
    """The threshold reaching `min_sensitivity` with the best specificity, with what it gives on this data."""
    from cxrvlm.metrics import auroc, binary_at_threshold, choose_threshold

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


def write_operating_point(op: dict[str, Any], path: str | Path) -> Path:
    from cxrvlm.eval.runner import jsonable

    path = Path(path)
    path.write_text(json.dumps(jsonable(op), indent=1) + "\n")
    return path


def read_operating_point(path: str | Path) -> dict[str, Any]:
    """An operating_point.json (or a metrics.json holding one under "operating_point")."""
    from cxrvlm.infer.interpreter import read_operating_point_file

    try:
        return {**read_operating_point_file(path), "source_file": str(path)}
    except ValueError as e:
        raise OperatingPointError(str(e)) from None