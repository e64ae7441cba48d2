"""How a model's close-ended answers fared on validation, per question type, saved beside the model
(`question_types.json`) so a reading can say how far each answer can be trusted: `cxrvlm eval` writes it from
`answer_types.by_type`, `cxrvlm ship` copies it.

    write_question_types({task: its by_type}, "val", eval_dir / QUESTION_TYPES_FILE)
    saved_question_types(model_dir)   # {task: {type: {"n", "accuracy", "constant_accuracy", "constant_answer",
                                      #         "no_better_than_constant"}}}, or {} when the folder has none
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from cxrvlm.jsonl import write_json

QUESTION_TYPES_FILE = "question_types.json"


def summary(by_task: dict[str, dict[str, Any]], split: str) -> dict[str, Any]:
    """What a reading needs of `answer_types.by_type`'s entry of each task."""
    return {"measured_on": split, "tasks": {task: {
        "constant_from": by_type["baseline_split"], "types": {
            kind: {"n": t["n"], "accuracy": t["accuracy"], "constant_answer": t.get("baseline_answer"),
                   "constant_accuracy": t.get("baseline_accuracy"),
                   "no_better_than_constant": bool(t.get("at_or_below_baseline"))}
            for kind, t in by_type["types"].items()}} for task, by_type in by_task.items()}}


def saved_question_types(folder: str | os.PathLike | None) -> dict[str, dict[str, dict[str, Any]]]:
    """{task: {type: its validation figures}} from a model or evaluation folder ({} without the file); ValueError
    naming the file when a type lacks its numbers."""
    path = Path(folder) / QUESTION_TYPES_FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        tasks = {task: entry["types"] for task, entry in json.loads(path.read_text())["tasks"].items()}
        for task, types in tasks.items():
            for kind, t in types.items():
                accuracy = float(t["accuracy"])
                if not (int(t["n"]) > 0 and math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
                    raise ValueError(f"{task} type {kind!r}: n must be positive and accuracy in [0, 1]")
                bool(t["no_better_than_constant"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a question-type summary ({e})") from None
    return tasks


def write_question_types(by_type: dict[str, Any], split: str, path: str | os.PathLike) -> Path:
    """Written whole or not at all (`jsonl.write_json`)."""
    return write_json(path, summary(by_type, split))
