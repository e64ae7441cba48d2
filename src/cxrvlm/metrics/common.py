"""Small helpers shared by the metric modules: metric-key slugs, target validation, safe division."""
from __future__ import annotations

import math
import re
from typing import Any


def slug(label: str) -> str:
    """A label as a metric-key suffix: "Pleural Effusion" -> "pleural_effusion"."""
    s = re.sub(r"[^a-z0-9]+", "_", str(label).lower()).strip("_")
    return s or "unnamed"


def require(target: dict[str, Any], key: str, metric: str) -> Any:
    """`target[key]`, or ValueError naming the metric and the missing field."""
    if not isinstance(target, dict):
        raise ValueError(f"{metric}: target must be a dict, got {type(target).__name__}")
    if key not in target or target[key] is None:
        raise ValueError(f"{metric}: target is missing field {key!r} (has {sorted(target)})")
    return target[key]


def div(num: float, den: float) -> float:
    """num / den, NaN when den is 0 (an undefined rate, e.g. sensitivity with no positives)."""
    return float(num) / float(den) if den else math.nan


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """F1 = 2TP / (2TP + FP + FN); NaN when there is nothing to score (no positives predicted or true)."""
    return div(2 * tp, 2 * tp + fp + fn)


def as_box(value: Any, where: str) -> tuple[float, float, float, float]:
    """Validate a normalised (x1, y1, x2, y2) box; ValueError naming `where` otherwise."""
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: box must be 4 numbers [x1, y1, x2, y2], got {value!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 < x1 or y2 < y1:
        raise ValueError(f"{where}: box must be finite with x1 <= x2 and y1 <= y2, got {value!r}")
    return x1, y1, x2, y2
