"""The evaluation's files: `metrics.json` (nested by task), `predictions.jsonl` (one line per example),
`other_disease.jsonl` (one line per film with another disease and no TB, asked the TB question),
`report.md` and `report.html` (tables per task, malformed-output counts, ROC and confusion matrices, an example
grid, reports side by side; pictures in `figures/` next to them).

metrics.json:
    {"model", "data", "split", "created", "n_examples", "options", "operating_point" (or null),
     "malformed": {task: n_invalid}, "main": {task: {"key", "value", "ci_low", "ci_high"}},
     "tasks": {task: {"n", "n_invalid", "invalid_rate", "invalid_reasons", "n_skipped", "skipped_reasons",
                      "seconds", "metrics": {...the task metric's keys...},
                      "by_source": {source: {"n", "metrics": {...the same keys over that source's examples...}}},
                      "by_type": {"baseline_split", "types": {type: {...}}, "flagged"}    (typed closed questions),
                      "other_disease": {"n", "n_read_as_positive", "rate", ..., "by_source"}  (the screening task)
                      "memorisation": {"n", "n_copied", "rate", "examples", ...}  (tasks that generate reports)
                     }}}
Sources are `by_source.source_key`s; `by_type` is `answer_types.by_type`; `other_disease` is
`other_disease.summary` (films with another disease and no TB read as TB); `memorisation` is
`eval.memorisation.by_task` (generated reports that copy a run of words only one training report holds: of the
texts given and, in `before_checks`, of what the model said before the copy guard replaced them).
"box_calibration" (when the detections hold enough right and wrong boxes) is `eval.box_calibration.fit`: the
Platt scaling of box scores to P(IoU >= 0.5), also written as box_calibration.json.
"""
from __future__ import annotations

import dataclasses
import html
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrvlm.eval import answer_types, box_calibration, breakdown, figures, memorisation
from cxrvlm.eval.breakdown import fmt
from cxrvlm.eval.runner import EvalResult
from cxrvlm.jsonl import clean, write_jsonl
from cxrvlm.metrics.memorisation import CopyIndex
from cxrvlm.tasks import get_task, list_tasks, screening_task

_CI = ("_ci_low", "_ci_high")


METRICS_FILE = "metrics.json"

def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def headline(task: str) -> tuple[str, ...]:
    """The task's headline metric keys, best first (none for a name no task has, e.g. an old run's)."""
    return get_task(task).headline if task in list_tasks() else ()


def main_metric(task: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """{"key", "value", "ci_low", "ci_high"} of the task's headline metric (values None where undefined)."""
    keys = [k for k in headline(task) if k in metrics]
    if not keys:
        keys = [k for k, v in metrics.items() if _finite(v) and not k.startswith("n") and not k.endswith(_CI)][:1]
    if not keys:
        return {"key": None, "value": None, "ci_low": None, "ci_high": None}
    key = next((k for k in keys if _finite(metrics[k])), keys[0])
    return clean({"key": key, "value": metrics.get(key), "ci_low": metrics.get(key + _CI[0]),
                     "ci_high": metrics.get(key + _CI[1])})


def metrics_document(result: EvalResult, info: dict[str, Any], operating_point: dict[str, Any] | None,
                     baseline: tuple[str, answer_types.Majority] | None = None,
                     copy_index: CopyIndex | None = None) -> dict[str, Any]:
    """The metrics.json document (module docstring). `baseline`: (split, majority answers) of the question types;
    None takes them from the evaluated records themselves. `copy_index`: the training reports, for each report
    task's `memorisation` (not measured without it)."""
    tasks = {t: r.to_json() for t, r in result.tasks.items()}
    if copy_index is not None:
        for task, copied in memorisation.by_task(result.records, copy_index).items():
            tasks[task]["memorisation"] = copied
    split, majority = baseline or (f"{info.get('split', 'evaluated')} (evaluated split: no training split given)",
                                   answer_types.majority_answers((r["task"], r["target"]) for r in result.records))
    for task, typed in answer_types.by_type(result.records, majority, split).items():
        if task in tasks:
            tasks[task]["by_type"] = typed
    if result.other_disease is not None and screening_task().name in tasks:
        tasks[screening_task().name]["other_disease"] = result.other_disease
    boxes = box_calibration.fit(result.records)
    return clean({
        **({"box_calibration": boxes} if boxes else {}),
        **info, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n_examples": sum(r.n for r in result.tasks.values()),
        "options": _options(result.options), "operating_point": operating_point,
        "malformed": {t: r.n_invalid for t, r in result.tasks.items()},
        "main": {t: main_metric(t, r["metrics"]) for t, r in tasks.items()},
        "tasks": tasks})


def write_outputs(result: EvalResult, out: str | Path, info: dict[str, Any],
                  operating_point: dict[str, Any] | None = None,
                  baseline: tuple[str, answer_types.Majority] | None = None,
                  copy_index: CopyIndex | None = None) -> dict[str, Any]:
    """Write metrics.json, predictions.jsonl, report.md, report.html (+ figures/) into `out`; returns the metrics
    document. `baseline`, `copy_index`: see `metrics_document`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = metrics_document(result, info, operating_point, baseline, copy_index)
    (out / METRICS_FILE).write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    write_jsonl(out / "predictions.jsonl", result.records)
    write_jsonl(out / "other_disease.jsonl", result.other_disease_records)
    threshold = operating_point.get("threshold") if operating_point else None
    figs = (figures.classification_figures(result.records, out, threshold)
            + figures.calibration_figures(result.records, out) + figures.example_grid(result.records, out))
    parts = {"figures": figs, "reports": figures.report_samples(result.records),
             "answers": figures.answer_samples(result.records)}
    (out / "report.md").write_text(render_markdown(doc, parts))
    (out / "report.html").write_text(render_html(doc, parts))
    return doc


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, formatted value) per metric; a key's bootstrap CI is shown beside it, not on its own row."""
    rows = []
    for k, v in metrics.items():
        if k.endswith(_CI):
            continue
        lo, hi = metrics.get(k + _CI[0]), metrics.get(k + _CI[1])
        ci = f" [{fmt(lo)}, {fmt(hi)}]" if (k + _CI[0]) in metrics else ""
        rows.append((k, fmt(v, k) + ci))
    return rows


def _summary_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for task, r in doc["tasks"].items():
        m = doc["main"][task]
        ci = f" [{fmt(m['ci_low'])}, {fmt(m['ci_high'])}]" if m.get("ci_low") is not None else ""
        rate = f"{r['n_invalid']} ({100 * r['invalid_rate']:.1f}%)" if r["n"] else "0"
        rows.append([task, str(r["n"]), rate, str(r["n_skipped"]), str(m["key"] or "–"), fmt(m["value"]) + ci])
    return rows


_SUMMARY_HEAD = ["task", "n", "malformed outputs", "skipped", "main metric", "value [95% CI]"]


def _op_line(op: dict[str, Any] | None) -> str:
    if not op:
        return "TB operating point: none (answers are the most likely candidate)."
    return (f"TB operating point: P(tuberculosis) >= {op['threshold']:.4f}, chosen on the {op.get('chosen_on', '?')} "
            f"split for sensitivity >= {op.get('min_sensitivity', 0.9):.2f} with the best specificity "
            f"(there: sensitivity {fmt(op.get('sensitivity'))}, specificity {fmt(op.get('specificity'))}, "
            f"n = {op.get('n', '?')}); applied unchanged here.")


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc])


def render_markdown(doc: dict[str, Any], parts: dict[str, Any]) -> str:
    out = [f"# Evaluation of `{doc.get('model')}` on `{doc.get('data')}` ({doc.get('split')})", "",
           f"{doc['n_examples']} examples scored, {doc.get('created', '')}. {_op_line(doc.get('operating_point'))}",
           "", "## Summary", "", _md_table(_SUMMARY_HEAD, _summary_rows(doc)), ""]
    for task, r in doc["tasks"].items():
        out += [f"## {task}", "", _md_table(["metric", "value"], metric_rows(r["metrics"])), ""]
        if r["invalid_reasons"]:
            out += ["Malformed outputs:", ""] + [f"- {k}: {v}" for k, v in r["invalid_reasons"].items()] + [""]
        if r["skipped_reasons"]:
            out += ["Skipped:", ""] + [f"- {k}: {v}" for k, v in r["skipped_reasons"].items()] + [""]
        for t in breakdown.tables(task, r):
            out += [f"### {t.title}", "", t.note, "", _md_table(t.head, t.rows), ""]
    if parts["figures"]:
        out += ["## Figures", ""] + [f"![{f['title']}]({f['path']})\n\n{f['title']}\n" for f in parts["figures"]]
    if parts["answers"]:
        head = ["task", "question", "generated", "answer", "probability", "truth"]
        out += ["## Sample answers", "", _md_table(head, [[a[h] for h in head] for a in parts["answers"]]), ""]
    if parts["reports"]:
        out += ["## Sample reports", "", _md_table(["study", "generated", "reference"], [
            [s["study_id"], s["generated"], s["reference"]] for s in parts["reports"]]), ""]
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.side td{width:50%;white-space:pre-wrap}img{max-width:100%;border:1px solid #ddd;margin:4px 0}
details{margin-bottom:1em}"""


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{h}</tr>{body}</table>'


def render_html(doc: dict[str, Any], parts: dict[str, Any]) -> str:
    e = html.escape
    body = [f"<h1>Evaluation of <code>{e(str(doc.get('model')))}</code></h1>",
            f"<p>Data <code>{e(str(doc.get('data')))}</code>, split <b>{e(str(doc.get('split')))}</b>, "
            f"{doc['n_examples']} examples scored, {e(doc.get('created', ''))}.</p>",
            f"<p>{e(_op_line(doc.get('operating_point')))}</p>",
            "<h2>Summary</h2>", _html_table(_SUMMARY_HEAD, _summary_rows(doc))]
    for fig in parts["figures"]:
        body.append(f"<h3>{e(fig['title'])}</h3><img src=\"{e(fig['path'])}\" alt=\"{e(fig['title'])}\">")
    if parts["reports"]:
        body.append("<h2>Sample reports</h2>")
        body.append(_html_table(["generated", "reference"], [[s["generated"], s["reference"]]
                                                              for s in parts["reports"]], "side"))
    if parts["answers"]:
        head = ["task", "question", "generated", "answer", "probability", "truth"]
        body += ["<h2>Sample answers</h2>", _html_table(head, [[a[h] for h in head] for a in parts["answers"]])]
    body.append("<h2>Metrics per task</h2>")
    for task, r in doc["tasks"].items():
        reasons = "".join(f"<li>{e(k)}: {v}</li>" for k, v in r["invalid_reasons"].items())
        skipped = "".join(f"<li>{e(k)}: {v}</li>" for k, v in r["skipped_reasons"].items())
        body.append(f"<h3>{e(task)}</h3><p>n = {r['n']}, malformed outputs = {r['n_invalid']}, "
                    f"skipped = {r['n_skipped']}, {r['seconds']} s</p>")
        if reasons or skipped:
            body.append(f"<details><summary>why</summary><ul>{reasons}{skipped}</ul></details>")
        body.append(_html_table(["metric", "value"], metric_rows(r["metrics"])))
        for t in breakdown.tables(task, r):
            body += [f"<h4>{e(t.title)}</h4>", f"<p>{e(t.note)}</p>", _html_table(t.head, t.rows)]
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>cxrvlm eval</title><style>{_CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def _options(options: Any) -> dict[str, Any]:
    """The evaluation's options as JSON: the copy guard as what it holds (its hashes are in copy_guard.npz)."""
    guard = options.copy_guard
    doc = dataclasses.asdict(dataclasses.replace(options, copy_guard=None))
    doc["copy_guard"] = {"runs": len(guard.hashes), "run_words": guard.n} if guard is not None else None
    return doc
