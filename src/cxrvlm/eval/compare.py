"""Side-by-side tables of several evaluations of the same split (`cxrvlm eval` folders) and the specialists
(`cxrvlm specialists`): every task's headline metrics, the screening test at its operating point, then the screening
AUROC, lung IoU and closed-question accuracy per source.

    cxrvlm compare old=runs/old/eval-val new=runs/new/eval-val --specialists runs/specialists/specialists.json
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrvlm.curate.card import table
from cxrvlm.eval.report import METRICS_FILE
from cxrvlm.tasks import get_task, list_tasks, mask_task, screening_task

Getter = Callable[[Mapping[str, Any]], float | str | None]


def _task(doc: Mapping[str, Any], task: str) -> Mapping[str, Any]:
    return (doc.get("tasks") or {}).get(task) or {}


def _metric(task: str, key: str) -> Getter:
    return lambda doc: _task(doc, task).get("metrics", {}).get(key)


def _source(task: str, source: str, key: str) -> Getter:
    return lambda doc: ((_task(doc, task).get("by_source") or {}).get(source) or {}).get("metrics", {}).get(key)


def _other_disease(task: str) -> Getter:
    return lambda doc: (_task(doc, task).get("other_disease") or {}).get("rate")


def _types_below(task: str) -> Getter:
    def get(doc: Mapping[str, Any]) -> str | None:
        types = (_task(doc, task).get("by_type") or {}).get("types") or {}
        below = sorted(t for t, r in types.items() if r.get("at_or_below_baseline"))
        return f"{len(below)} of {len(types)}" + (f" ({', '.join(below)})" if below else "") if types else None
    return get


def _screening_rows() -> list[tuple[str, Getter]]:
    """The screening test at the validation operating point (the task that holds it, `Task.screening`)."""
    task = screening_task()
    kind = task.screening[0]
    return [(f"{task.name}: {kind} {what} at the val operating point", _metric(task.name, f"{kind}_{what}_at_threshold"))
            for what in ("sensitivity", "specificity", "accuracy")] + \
        [(f"{task.name}: other disease read as {task.screening[1]}", _other_disease(task.name))]


def rows_for(tasks: Sequence[str]) -> list[tuple[str, Getter]]:
    """Every headline metric of the tasks evaluated (registry order), then the screening test's operating point and
    the question types answered no better than their majority answer."""
    rows = [(f"{t}: {key}", _metric(t, key)) for t in list_tasks() if t in tasks for key in get_task(t).headline]
    rows += _screening_rows()
    rows += [(f"{t}: question types at or below their majority answer", _types_below(t)) for t in tasks]
    return rows


def read_eval(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found: give a folder written by `cxrvlm eval`")
    return json.loads(path.read_text())


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return table(header, [[_cell(c) for c in row] for row in rows]).split("\n")


def _sources(docs: Sequence[Mapping[str, Any]], task: str, key: str) -> list[str]:
    found = set()
    for doc in docs:
        for s, r in (_task(doc, task).get("by_source") or {}).items():
            if (r.get("metrics") or {}).get(key) is not None:
                found.add(s)
    return sorted(found)


def compare(evals: Mapping[str, Mapping[str, Any]], specialists: Mapping[str, Any] | None = None) -> str:
    """Markdown: headline rows, the screening AUROC per source, lung IoU per source, closed accuracy per source; a
    column per evaluation, then the specialists' column where they have the figure."""
    names, docs = list(evals), list(evals.values())
    tasks = sorted({t for d in docs for t in (d.get("tasks") or {})})
    screen, seg = screening_task(), mask_task().name
    kind = screen.screening[0]
    tb, unet = (specialists or {}).get("tb_cnn") or {}, (specialists or {}).get("lung_unet") or {}
    spec = {f"{screen.name}: {kind}_auroc": tb.get("auroc"), f"{seg}: iou": unet.get("iou"),
            f"{seg}: dice": unet.get("dice"),
            **{f"{screen.name}: {kind} {w} at the val operating point": tb.get(w)
               for w in ("sensitivity", "specificity", "accuracy")},
            f"{screen.name}: other disease read as {screen.screening[1]}":
                (tb.get("other_disease_as_tb") or {}).get("rate")}
    header = ["", *names, *(["specialists"] if specialists else [])]
    rows = [r for r in rows_for(tasks) + [(f"{seg}: iou", _metric(seg, "iou"))]
            if any(r[1](d) is not None for d in docs) or r[0] in spec]
    lines = ["## Headline figures", ""]
    lines += _table(header, [[label, *(get(d) for d in docs), *([spec.get(label)] if specialists else [])]
                             for label, get in rows])
    # (title, task, metric key, the specialist's figures and key)
    per_source = [(f"{screen.name}: {kind}_auroc", screen.name, f"{kind}_auroc", tb, "auroc"),
                  (f"{seg}: iou", seg, "iou", unet, "iou")]
    per_source += [(f"{t}: closed_accuracy", t, "closed_accuracy", {}, "") for t in tasks
                   if any(_task(d, t).get("by_type") for d in docs)]
    for title, task, key, theirs, their_key in per_source:
        lines += ["", f"## {title} by source", ""]
        lines += _table(header, [[s, *(_source(task, s, key)(d) for d in docs),
                                  *([(theirs.get("by_source") or {}).get(s, {}).get(their_key)] if specialists else [])]
                                 for s in _sources(docs, task, key)])
    return "\n".join(lines) + "\n"
