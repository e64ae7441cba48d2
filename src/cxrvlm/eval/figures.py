"""Evaluation records -> the report's pictures (ROC and confusion matrices of classification, a grid of examples
with true and predicted boxes and masks) and its text samples (reports side by side, VQA answers).

Records are the dicts of `predictions.jsonl` (see `runner.py`); each function returns what it drew (paths
relative to the report folder) so the markdown and HTML can link them.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrvlm.eval import plots
from cxrvlm.tasks import get_task, labels, list_tasks, screening_task
from cxrvlm.tokens.rle import rle_decode

log = logging.getLogger(__name__)

FIGURES = "figures"
INVALID = "(invalid)"


def _scored(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "skipped" not in r and "prediction" in r]


def _tasks_where(test: Any) -> list[str]:
    return [t for t in list_tasks() if test(get_task(t))]


def classification_figures(records: Sequence[dict[str, Any]], out: Path,
                           threshold: float | None) -> list[dict[str, str]]:
    """ROC of binary TB screening (operating point marked) and one confusion matrix per kind of the screening
    task's examples."""
    figs: list[dict[str, str]] = []
    task = screening_task()
    kind, positive = task.screening
    rows = [r for r in _scored(records) if r["task"] == task.name]
    tb = [r for r in rows if r["target"].get("kind") == kind and positive in (r["prediction"].get("probs") or {})]
    if tb:
        y = [int(r["target"]["label"] == positive) for r in tb]
        s = [float(r["prediction"]["probs"][positive]) for r in tb]
        if 0 < sum(y) < len(y):
            path = plots.roc_png(y, s, out / FIGURES / "tb_roc.png", threshold, title="TB screening")
            figs.append({"title": "TB screening ROC (red dot: the operating point)", "path": _rel(path, out)})
    for group in sorted({r["target"].get("kind", "") for r in rows}):
        mine = [r for r in rows if r["target"].get("kind", "") == group]
        cands = [str(c) for c in mine[0]["target"].get("candidates") or []]
        if not cands:
            continue
        matrix = confusion(mine, cands)
        path = plots.confusion_png(matrix, cands, [*cands, INVALID], out / FIGURES / f"confusion_{group or 'all'}.png",
                                   title=f"{task.name} {group}")
        figs.append({"title": f"Confusion matrix, {task.name} {group}", "path": _rel(path, out)})
    return figs


def calibration_figures(records: Sequence[dict[str, Any]], out: Path) -> list[dict[str, str]]:
    """Reliability diagrams of the label head: every settled (film, label) pair, and the TB output alone."""
    pairs: dict[str, list[tuple[float, float]]] = {"all": [], "tb": []}
    for r in _scored(records):
        if not get_task(r["task"]).by_head:
            continue
        probs = r["prediction"].get("probs") or {}
        for name, y in (r["target"].get("labels") or {}).items():
            if probs.get(name) is not None and np.isfinite(probs[name]):
                pairs["all"].append((float(y), float(probs[name])))
                if name == labels.TB:
                    pairs["tb"].append((float(y), float(probs[name])))
    figs = []
    for key, title in (("all", "Label head, every label"), ("tb", "Label head, tuberculosis")):
        if pairs[key]:
            ys, ps = zip(*pairs[key])
            path = plots.reliability_png(ys, ps, out / FIGURES / f"reliability_{key}.png", title=title)
            figs.append({"title": f"Reliability diagram: {title.lower()} (bars: observed share per bin)",
                         "path": _rel(path, out)})
    return figs


def confusion(records: Sequence[dict[str, Any]], candidates: Sequence[str]) -> np.ndarray:
    """(C, C + 1) counts: row = true label, column = predicted label, last column = no valid answer."""
    m = np.zeros((len(candidates), len(candidates) + 1), dtype=int)
    for r in records:
        truth, got = r["target"].get("label"), r["prediction"].get("label")
        if truth not in candidates:
            continue
        col = candidates.index(got) if got in candidates else len(candidates)
        m[candidates.index(truth), col] += 1
    return m


def _decode(rle: Any) -> np.ndarray | None:
    if not isinstance(rle, dict):
        return None
    try:
        return rle_decode(rle)
    except ValueError:
        return None


def grid_item(r: dict[str, Any]) -> plots.GridItem | None:
    """A record of a task whose answers hold coordinates -> what the grid draws: its true boxes (target "boxes" or
    "box") or masks (target "masks") and the predicted ones (None for other tasks or no image)."""
    t, p = r["target"], r["prediction"]
    if r["task"] not in _tasks_where(lambda task: task.coordinates) or not r.get("images"):
        return None
    pred_boxes = [(b["label"] or "", tuple(b["box"])) for b in p.get("boxes", [])]
    item = plots.GridItem(image=r["images"][0], pred_boxes=pred_boxes,
                          caption=f"{r['task']}: {r['prefix']}" + ("" if r.get("valid", True) else " [malformed]"))
    if t.get("boxes"):
        item.true_boxes = [(b["label"], tuple(b["box"])) for b in t["boxes"]]
    elif t.get("box"):
        item.true_boxes = [(t.get("label", ""), tuple(t["box"]))]
    else:
        item.true_masks = [m for m in (_decode(e.get("rle")) for e in t.get("masks", [])) if m is not None]
        item.pred_masks = [m for m in (_decode(e.get("rle")) for e in p.get("masks", [])) if m is not None]
    return item


def example_grid(records: Sequence[dict[str, Any]], out: Path, per_task: int = 4) -> list[dict[str, str]]:
    """Up to `per_task` examples of each localisation task, truth green, prediction red."""
    items: list[plots.GridItem] = []
    for task in _tasks_where(lambda task: task.coordinates):
        chosen = [r for r in _scored(records) if r["task"] == task][:per_task]
        items += [i for i in map(grid_item, chosen) if i is not None]
    path = plots.example_grid_png(items, out / FIGURES / "examples.png")
    if path is None:
        return []
    title = "Examples: truth in green, prediction in red, overlapping masks brown (boxes and masks)"
    return [{"title": title, "path": _rel(path, out)}]


def report_samples(records: Sequence[dict[str, Any]], n: int = 6) -> list[dict[str, str]]:
    """Generated and reference reports of the first `n` cases whose target is a report (a report task's, a chain's
    step 2)."""
    rows = [r for r in _scored(records) if "report" in r["target"]]
    return [{"study_id": r["study_id"], "task": r["task"], "prompt": r["prefix"], "generated": r.get("generated", ""),
             "reference": str(r["target"].get("report", "")), "valid": "yes" if r.get("valid") else "no"}
            for r in rows[:n]]


def answer_samples(records: Sequence[dict[str, Any]], n: int = 8) -> list[dict[str, str]]:
    """Question, model answer and truth for the first `n` cases of the tasks answered from candidates
    (classification, VQA)."""
    rows = [r for r in _scored(records) if r["task"] in _tasks_where(lambda task: task.candidates is not None)]
    out = []
    for r in rows[:n]:
        p, t = r["prediction"], r["target"]
        probs = p.get("probs") or {}
        answer = p.get("answer") or p.get("label") or ""
        out.append({"task": r["task"], "question": r["prefix"], "generated": r.get("generated", ""),
                    "answer": answer, "probability": f"{probs[answer]:.3f}" if answer in probs else "",
                    "truth": str(t.get("answer", t.get("label", "")))})
    return out


def _rel(path: Path, out: Path) -> str:
    return str(Path(path).relative_to(out))
