"""Close-ended answers per question type: accuracy, the majority-answer baseline and the answers the model gives,
so a model that always says "pa" or "left" is seen for what it is.

A question type is the `template` of a close-ended target (VQA: label, normal, choice, view, lung_size, extent,
density, change, source). The majority baseline of a type answers every question of that type with the type's most
frequent answer in the baseline split: the training split of the same curated folder when there is one
(`cxrvlm eval` reads `train.jsonl`), else the evaluated split itself (said in `baseline_split`). Its accuracy on
the evaluated questions is what a constant answer scores; a type whose accuracy is at or below it is flagged.

    split, majority = train_baseline("runs/curated")      # ("train", {task: {type: {"answer", "share", "n"}}})
    by_type(records, majority, split)["vqa"]["types"]["view"]   # {"n", "accuracy", "baseline_accuracy", ...}
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrvlm.data.split import read_split
from cxrvlm.metrics.vqa import normalize_answer
from cxrvlm.tasks.base import question_type

log = logging.getLogger(__name__)

NO_ANSWER = "(no answer)"

Majority = dict[str, dict[str, dict[str, Any]]]  # task -> type -> {"answer", "share", "n"}


def majority_answers(items: Iterable[tuple[str, Mapping[str, Any]]]) -> Majority:
    """(task, target) pairs -> per task and question type the most frequent answer, its share and the count
    (ties: the answer first in alphabetical order)."""
    counts: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for task, target in items:
        kind = question_type(target)
        if kind is not None:
            counts[task][kind][normalize_answer(target["answer"])] += 1
    return {task: {kind: _top(c) for kind, c in sorted(types.items())} for task, types in sorted(counts.items())}


def train_baseline(data: str | Path) -> tuple[str, Majority] | None:
    """("train", majority answers) of the curated folder's train split; None (with a warning) when it has none."""
    if not (Path(data) / "train.jsonl").is_file():
        log.warning("no train split in %s: majority answers from the evaluated split", data)
        return None
    return "train", majority_answers((e.task, e.target) for e in read_split(data, "train"))


def _top(counter: Counter) -> dict[str, Any]:
    answer = min(counter, key=lambda a: (-counter[a], a))
    n = sum(counter.values())
    return {"answer": answer, "share": counter[answer] / n, "n": n}


def _given(record: Mapping[str, Any]) -> str:
    p = record.get("prediction") or {}
    answer = p.get("answer") if p.get("answer") is not None else p.get("label")
    return normalize_answer(answer) if answer is not None else NO_ANSWER


def _row(records: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    truth = [normalize_answer(r["target"]["answer"]) for r in records]
    given = [_given(r) for r in records]
    accuracy = sum(g == t for g, t in zip(given, truth)) / len(truth)
    truths = Counter(truth)
    row = {"n": len(truth), "accuracy": accuracy, "predicted": dict(Counter(given).most_common()),
           "truth": dict(truths.most_common()),
           "per_answer": {a: sum(g == t == a for g, t in zip(given, truth)) / n for a, n in truths.most_common()}}
    if baseline is not None:
        base = sum(t == baseline["answer"] for t in truth) / len(truth)
        row.update(baseline_answer=baseline["answer"], baseline_share=baseline["share"], baseline_accuracy=base,
                   at_or_below_baseline=accuracy <= base + 1e-12)
    return row


def by_type(records: Sequence[Mapping[str, Any]], majority: Majority, baseline_split: str) -> dict[str, Any]:
    """Per task with typed close-ended questions: {"baseline_split", "types": {type: {"n", "accuracy",
    "baseline_answer", "baseline_share", "baseline_accuracy", "at_or_below_baseline", "predicted", "truth",
    "per_answer": {true answer: share of its questions answered right}}},
    "flagged": [types at or below their baseline]}. Skipped records are left out."""
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        kind = question_type(r.get("target") or {})
        if kind is not None and "skipped" not in r and "prediction" in r:
            groups[r["task"]][kind].append(r)
    out = {}
    for task, types in sorted(groups.items()):
        rows = {k: _row(types[k], majority.get(task, {}).get(k)) for k in sorted(types)}
        out[task] = {"baseline_split": baseline_split, "types": rows,
                     "flagged": [k for k, v in rows.items() if v.get("at_or_below_baseline")]}
    return out
