"""The detection-score calibration saved beside a model (`box_calibration.json`), in one place: a box's score
(its loc tokens' geometric-mean probability) -> the probability that the box is right (IoU >= 0.5 with a true box of
its label), by Platt scaling fitted on validation (`cxrvlm.eval.box_calibration`).

    write_box_calibration({"a": 1.3, "b": 0.2, ...}, eval_dir / BOX_CALIBRATION_FILE)
    saved_box_calibration(model_dir)      # (a, b), or None when the folder has none
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from cxrvlm.jsonl import write_json

BOX_CALIBRATION_FILE = "box_calibration.json"


def saved_box_calibration(folder: str | os.PathLike | None) -> tuple[float, float] | None:
    """(a, b) from a model or evaluation folder's box_calibration.json; None without one; ValueError naming the
    file when it is unreadable or its numbers are not finite."""
    if folder is None or not (Path(folder) / BOX_CALIBRATION_FILE).is_file():
        return None
    path = Path(folder) / BOX_CALIBRATION_FILE
    try:
        data = json.loads(path.read_text())
        a, b = float(data["a"]), float(data["b"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a box calibration with numbers 'a' and 'b' ({e})") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        raise ValueError(f"{path}: 'a' must be positive and 'b' finite, got {a}, {b}")
    return a, b


def write_box_calibration(data: dict[str, Any], path: str | os.PathLike) -> Path:
    return write_json(path, data)
