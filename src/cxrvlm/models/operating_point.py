"""The TB operating point saved beside a model (`operating_point.json`): reading and writing it, in one place.

    write_operating_point({"threshold": 0.37, "chosen_on": "val", ...}, run / "eval-val" / OPERATING_POINT_FILE)
    read_operating_point(path)["threshold"]      # a file, or a model / evaluation folder holding one
    saved_threshold(model_dir)                   # the threshold, or None when the folder has no operating point

How the point is chosen (on validation data, for the WHO sensitivity target) is `cxrvlm.eval.operating_point`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cxrvlm.jsonl import clean, write_json

OPERATING_POINT_FILE = "operating_point.json"
# Where a threshold may sit: top level (operating_point.json), or nested in a metrics.json / a reading's "tb".
NESTED_KEYS = ("operating_point", "tb")


def _file(path: str | os.PathLike) -> Path:
    """`path` itself, or the operating point file inside it when it is an existing folder."""
    path = Path(path)
    return path / OPERATING_POINT_FILE if path.is_dir() else path


def _checked_threshold(value: Any, where: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{where}: 'threshold' must be a probability in [0, 1], got {value!r}")
    return float(value)


def read_operating_point(path: str | os.PathLike) -> dict[str, Any]:
    """The operating point in a file (or folder): {"threshold": t, ..., "source_file": path}, t a float in [0, 1].
    ValueError naming the file when it is missing, unreadable or holds no valid threshold."""
    path = _file(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'threshold', got {type(data).__name__}")
    for key in NESTED_KEYS:
        if "threshold" not in data and isinstance(data.get(key), dict):
            data = data[key]
    return {**data, "threshold": _checked_threshold(data.get("threshold"), path), "source_file": str(path)}


def saved_threshold(folder: str | os.PathLike | None) -> float | None:
    """The TB threshold saved with a model (its folder's operating_point.json); None when it has none."""
    if folder is None or not (Path(folder) / OPERATING_POINT_FILE).is_file():
        return None
    return read_operating_point(Path(folder) / OPERATING_POINT_FILE)["threshold"]


def write_operating_point(op: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `op` (it must hold a threshold in [0, 1]) to a file (its folder made if need be), or into an existing
    folder as operating_point.json.
    Atomic (a temporary file renamed over the target), so a reader never sees half a file."""
    path = _file(path)
    _checked_threshold(clean(op).get("threshold"), path)
    return write_json(path, op)
