"""Side-by-side tables of several evaluations of the same split (`cxrvlm eval` folders) and the specialists
(`cxrvlm specialists`): the headline figures, then TB and lung IoU per source.

    cxrvlm compare old=runs/old/eval-val new=runs/new/eval-val --specialists runs/specialists/specialists.json
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrvlm.eval.report import METRICS_FILE

Getter = Callable[[Mapping[str, Any]], float | str | None]


def _metric(task: str, key: str) -> Getter:
    return lambda doc: ((doc.get("tasks") or {}).get(task) or {}).get("metrics", {}).get(key)


def _other_disease(doc: Mapping[str, Any]) -> float | None:
    found = ((doc.get("tasks") or {}).get("classify") or {}).get("other_disease") or {}
    return found.get("rate")


def _types_below(doc: Mapping[str, Any]) -> str | None:
    types = (((doc.get("tasks") or {}).get("vqa") or {}).get("by_type") or {}).get("types") or {}
    below = sorted(t for t, r in types.items() if r.get("at_or_below_baseline"))
    return f"{len(below)} of {len(types)}" + (f" ({', '.join(below)})" if below else "") if types else None


def _source(task: str, source: str, key: str) -> Getter:
    def get(doc: Mapping[str, Any]) -> float | None:
        found = (((doc.get("tasks") or {}).get(task) or {}).get("by_source") or {}).get(source) or {}
        return (found.get("metrics") or {}).get(key)
    return get


ROWS: list[tuple[str, Getter]] = [
    ("TB AUROC", _metric("classify", "tb_auroc")),
    ("TB sensitivity at the val operating point", _metric("classify", "tb_sensitivity_at_threshold")),
    ("TB specificity at the val operating point", _metric("classify", "tb_specificity_at_threshold")),
    ("TB accuracy at the val operating point", _metric("classify", "tb_accuracy_at_threshold")),
    ("other disease read as TB", _other_disease),
    ("image labels: macro AUROC (labels with >= 20 positives)", _metric("image_labels", "labels_macro_auroc")),
    ("closed VQA accuracy", _metric("vqa", "closed_accuracy")),
    ("VQA question types at or below their majority answer", _types_below),
    ("VQA-RAD closed accuracy", _source("vqa", "vqa_rad", "closed_accuracy")),
    ("VQA-RAD open token F1", _source("vqa", "vqa_rad", "open_token_f1")),
    ("detection mAP@.5", _metric("detect", "map_50")),
    ("grounding accuracy (IoU >= .5)", _metric("ground", "accuracy_iou50")),
    ("lung IoU", _metric("segment", "iou")),
    ("report CheXpert F1 (14, micro)", _metric("report", "f1_14_micro")),
]


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
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)]


def _sources(docs: Sequence[Mapping[str, Any]], task: str, key: str) -> list[str]:
    found = set()
    for doc in docs:
        for s, r in (((doc.get("tasks") or {}).get(task) or {}).get("by_source") or {}).items():
            if (r.get("metrics") or {}).get(key) is not None:
                found.add(s)
    return sorted(found)


def compare(evals: Mapping[str, Mapping[str, Any]], specialists: Mapping[str, Any] | None = None) -> str:
    """Markdown: headline rows, TB AUROC per source, lung IoU per source; a column per evaluation, then the
    specialists' column where they have the figure."""
    names, docs = list(evals), list(evals.values())
    tb, unet = (specialists or {}).get("tb_cnn") or {}, (specialists or {}).get("lung_unet") or {}
    spec = {"TB AUROC": tb.get("auroc"), "TB sensitivity at the val operating point": tb.get("sensitivity"),
            "TB specificity at the val operating point": tb.get("specificity"),
            "TB accuracy at the val operating point": tb.get("accuracy"),
            "other disease read as TB": (tb.get("other_disease_as_tb") or {}).get("rate"), "lung IoU": unet.get("iou")}
    header = ["", *names, *(["specialists"] if specialists else [])]
    lines = ["## Headline figures", ""]
    lines += _table(header, [[label, *(get(d) for d in docs), *([spec.get(label)] if specialists else [])]
                             for label, get in ROWS])
    lines += ["", "## TB AUROC by source", ""]
    rows = [[s, *(_source("classify", s, "tb_auroc")(d) for d in docs),
             *([(tb.get("by_source") or {}).get(s, {}).get("auroc")] if specialists else [])]
            for s in _sources(docs, "classify", "tb_auroc")]
    lines += _table(header, rows)
    lines += ["", "## Lung IoU by source", ""]
    rows = [[s, *(_source("segment", s, "iou")(d) for d in docs),
             *([(unet.get("by_source") or {}).get(s, {}).get("iou")] if specialists else [])]
            for s in _sources(docs, "segment", "iou")]
    lines += _table(header, rows)
    return "\n".join(lines) + "\n"
