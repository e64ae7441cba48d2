"""The report's breakdown tables, from metrics.json: each task's headline metric per source, the close-ended
answers per question type against their majority baseline, the films with another disease read as TB, and the
generated texts that copy one training patient's text.

Each table is a `Table` (title, note, head, rows of strings) that report.md and report.html render alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cxrvlm.tasks import get_task, list_tasks, screening_task

_COUNT = re.compile(r"(^|_)n($|_)")


@dataclass
class Table:
    title: str
    note: str
    head: list[str]
    rows: list[list[str]]


def fmt(v: Any, key: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if float(v).is_integer() and (_COUNT.search(key) or abs(v) >= 10):  # counts: n, tb_n_invalid, ...
        return f"{int(v)}"
    return f"{v:.4f}"


def source_keys(task: str) -> list[str]:
    """The metric keys of a task's per-source table: its headline keys, and for the screening task the
    sensitivity and specificity at the operating point."""
    if task not in list_tasks():
        return []
    keys = list(get_task(task).headline)
    screening = screening_task()
    if screening.name == task:
        kind = screening.screening[0]
        keys[1:1] = [f"{kind}_accuracy", f"{kind}_sensitivity", f"{kind}_specificity"]
    return list(dict.fromkeys(keys))


def source_table(task: str, entry: dict[str, Any]) -> Table | None:
    """One row per source: n and the task's headline metrics over that source's examples."""
    by_source = entry.get("by_source") or {}
    keys = [k for k in source_keys(task) if any(k in s["metrics"] for s in by_source.values())]
    if not by_source or not keys:
        return None
    rows = [[source, str(s["n"]), *(fmt(s["metrics"].get(k)) for k in keys)] for source, s in by_source.items()]
    note = "The task's metric over each source's examples" + (
        ", the screening test at the operating point of the whole split." if task == screening_task().name else ".")
    return Table(f"{task}: per source", note, ["source", "n", *keys], rows)


def _answers(counts: dict[str, int], right: dict[str, float] | None = None) -> str:
    """"a 3, b 1", or with each answer's accuracy "a 3 (0.67), b 1 (0.00)"."""
    return ", ".join(f"{a} {n}" + (f" ({fmt(right[a])})" if right and a in right else "") for a, n in counts.items())


def type_table(task: str, entry: dict[str, Any]) -> Table | None:
    """One row per question type: accuracy, the majority answer and its accuracy, what the model answered."""
    typed = entry.get("by_type")
    if not typed:
        return None
    rows = [[kind, str(t["n"]), fmt(t["accuracy"]), f"{t.get('baseline_answer', '–')} ({fmt(t.get('baseline_share'))})",
             fmt(t.get("baseline_accuracy")), "AT OR BELOW" if t.get("at_or_below_baseline") else "above",
             _answers(t["predicted"]), _answers(t["truth"], t.get("per_answer"))] for kind, t in typed["types"].items()]
    head = ["type", "n", "accuracy", "majority answer (share)", "majority accuracy", "vs majority", "predicted",
            "truth (accuracy per true answer)"]
    note = f"Majority answer of each type in the {typed['baseline_split']} split."
    return Table(f"{task}: close-ended answers per question type", note, head, rows)


def other_disease_table(entry: dict[str, Any]) -> Table | None:
    """Films with another disease and no TB read as the screening positive, overall and per source."""
    od = entry.get("other_disease")
    if not od:
        return None
    rows = [[name, str(s["n"]), str(s["n_read_as_positive"]), fmt(s["rate"]), fmt(s["mean_probability"])]
            for name, s in [("all", od), *od["by_source"].items()]]
    note = (f"The question {od['question']!r} asked of every film with another disease and no {od['positive']}; "
            f"read as {od['positive']} when {od['rule']} (threshold {fmt(od['threshold'])}).")
    return Table(f"Films with another disease read as {od['positive']}", note,
                 ["source", "films", f"read as {od['positive']}", "rate", f"mean P({od['positive']})"], rows)


def memorisation_table(task: str, entry: dict[str, Any]) -> Table | None:
    """Generated texts that copy patient-specific training text: as the model said them, and as given (after the
    copy guard replaced them)."""
    copied = entry.get("memorisation")
    if not copied or not copied.get("n"):
        return None
    said = copied.get("before_checks") or copied
    rows = [[name, str(m["n"]), str(m["n_copied"]), fmt(m["rate"])] for name, m in
            (("generated", said), ("given", copied))]
    note = (f"Texts holding a run of {copied['run_words']} words that only one of the "
            f"{copied['training_documents']} training reports or case notes holds.")
    return Table(f"{task}: copies of one training patient's text", note, ["texts", "n", "copying", "rate"], rows)


def tables(task: str, entry: dict[str, Any]) -> list[Table]:
    """The breakdown tables of one task's metrics.json entry."""
    made = (source_table(task, entry), type_table(task, entry), other_disease_table(entry),
            memorisation_table(task, entry))
    return [t for t in made if t]
