"""The examples of one curated split (`cxrvlm curate` writes train/val/test.jsonl), as read by training, evaluation
and the trainers beside them, and grouped by task."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from cxrvlm.examples import Example
from cxrvlm.tasks import get_task, list_tasks


def read_split(data_dir: str | Path, split: str) -> list[Example]:
    """Examples of `split` ("train", "val", "test") from a `cxrvlm curate` folder."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} not found: point --data / data= at a folder written by `cxrvlm curate`")
    examples = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                examples.append(Example.from_json(json.loads(line)))
            except (json.JSONDecodeError, ValueError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: not a curated example ({e})") from None
    return examples


class TaskData:
    """Examples of one split the decoder learns, grouped by task, optionally restricted to `tasks` (tasks answered
    by the label head, `Task.by_head`, are left out: they are trained with the encoder, `cxrvlm train-probe`)."""

    def __init__(self, examples: list[Example], tasks: list[str] | None = None, source: str = "") -> None:
        by_task: dict[str, list[Example]] = defaultdict(list)
        head_tasks = {t for t in list_tasks() if get_task(t).by_head}
        for ex in examples:
            if ex.task in head_tasks:
                continue
            if tasks is None or ex.task in tasks:
                by_task[ex.task].append(ex)
        if tasks is not None:
            missing = sorted(set(tasks) - set(by_task))
            if missing:
                raise ValueError(f"{source or 'data'}: no examples for task(s) {missing}; it has {sorted(by_task)}")
        if not by_task:
            raise ValueError(f"{source or 'data'}: no examples")
        self.by_task = dict(sorted(by_task.items()))

    @property
    def sizes(self) -> dict[str, int]:
        return {t: len(v) for t, v in self.by_task.items()}

    def get(self, task: str, index: int) -> Example:
        return self.by_task[task][index]
