"""A self-contained HTML page of one reading: the overlay embedded as base64, TB probability, findings, report,
boxes, masks, answers, warnings, timings and the research-use notice. Every model text is escaped."""
from __future__ import annotations

from html import escape
from typing import Any

from cxrvlm.about import NOTICE
from cxrvlm.io.encode import png_base64
from cxrvlm.tokens.rle import rle_area

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em}
.notice{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em;font-weight:600}
.grid{display:flex;gap:1.5em;flex-wrap:wrap}.grid>div{flex:1 1 420px}
img{max-width:100%;border:1px solid #ccc}table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f4f4f4}
.report{white-space:pre-wrap;background:#f8f8f8;padding:.6em;border-left:3px solid #888}
.warn{color:#8a4b00}small{color:#666}.legend{font-size:.85em;color:#555}
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p><small>none</small></p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _tb(reading: dict[str, Any]) -> str:
    tb = reading.get("tb")
    if not tb:
        return "<p><small>not computed</small></p>"
    return (f"<p><b>{tb['probability']:.3f}</b> &rarr; <b>{escape(tb['label'])}</b> "
            f"<small>(threshold {tb['threshold']:.3f}, {escape(str(tb.get('threshold_source', '')))})</small></p>")


def _mask_area(seg: dict[str, Any]) -> int | None:
    try:
        return rle_area(seg["mask"])
    except (ValueError, KeyError, TypeError):
        return None


def _not_assessable(reading: dict[str, Any]) -> str:
    """The reasons an image was not read, first on the page ("" when it was read)."""
    q = reading.get("quality") or {}
    if q.get("assessable", True):
        return ""
    items = "".join(f"<li>{escape(str(r))}</li>" for r in q.get("reasons", []))
    return f"<h2>Not assessable</h2><p>No verdict: this image has nothing to read.</p><ul class='warn'>{items}</ul>"


def _verdict(reading: dict[str, Any]) -> str:
    v = reading.get("verdict")
    if not v:
        return ""
    called = f" ({escape(', '.join(v['called']))})" if v.get("called") else ""
    return f"<h2>Verdict: {escape(v['label'])}{called}</h2>"


def _saliency(reading: dict[str, Any]) -> str:
    """Each saliency map (TB, and every finding called) drawn small, stretched and smoothed, with its label."""
    maps = reading.get("saliency") or []
    if not maps:
        return ""
    figures = "".join(
        f"<figure style='display:inline-block;margin:0 1em 0 0'><img alt='saliency of {escape(m['label'])}' "
        f"src='data:image/png;base64,{m['png']}' width='128' height='128' style='image-rendering:auto'>"
        f"<figcaption>{escape(m['label'])}</figcaption></figure>" for m in maps)
    return ("<h2>Where the scores come from</h2><p><small>Class activation maps of the label head: brighter cells "
            "raise the score more (each map scaled to its own range).</small></p>" + figures)


def _report_note(reading: dict[str, Any]) -> str:
    """Where the report came from, and what was wrong with a replaced generated report (a call it contradicted, a
    prior it invented, another patient's words it copied)."""
    found = (reading.get("consistency") or {}).get("contradictions") or []
    if not found:
        return f"<p><small>{escape(reading.get('report_source') or '')}</small></p>" if reading.get("report") else ""
    items = "".join(f"<li>{escape(str(c))}</li>" for c in found)
    return (f"<p><small>{escape(reading.get('report_source') or '')}: the generated report was replaced:"
            f"</small></p><ul class='warn'>{items}</ul>")


def _sections(reading: dict[str, Any]) -> str:
    report = reading.get("report") or ""
    parts = [_not_assessable(reading),
        _verdict(reading),
        "<h2>Tuberculosis</h2>", _tb(reading),
        "<h2>Findings</h2>", _table(["finding", "probability"],
                                    [[f["label"], f["probability"]] for f in reading.get("findings", [])]),
        _saliency(reading),
        "<h2>Report</h2>",
        f"<div class='report'>{escape(report)}</div>" if report else "<p><small>none</small></p>",
        _report_note(reading),
        "<h2>Detections</h2>", _table(["label", "box x1, y1, x2, y2 (px)", "score"],
                                      [[d["label"], d["box"], d["score"]] for d in reading.get("detections", [])]),
        "<h2>Segmentations</h2>", _table(["label", "box (px)", "area (px)", "score"],
                                         [[s["label"], s["box"], _mask_area(s), s["score"]]
                                          for s in reading.get("segmentations", [])]),
        "<p class='legend'>A box's score is the probability that it is right (overlaps the true box by IoU 0.5 or "
        "more) when the model ships a validation calibration (the built-in model does), else its tokens' confidence; "
        "a mask's score is its tokens' confidence, not a probability.</p>",
        "<h2>Questions</h2>", _table(["question", "answer", "probability", "kind", "on validation"],
                                     [[a["question"], a["answer"], a["probability"],
                                       "closed" if a.get("closed") else "open", answer_record(a)]
                                      for a in reading.get("answers", [])]),
    ]
    warnings = reading.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
        parts += ["<h2>Warnings</h2>", f"<ul class='warn'>{items}</ul>"]
    timing = reading.get("timing_ms") or {}
    parts.append("<p><small>time (ms): " + escape(", ".join(f"{k} {v:g}" for k, v in timing.items())) + "</small></p>")
    return "\n".join(parts)


def answer_record(answer: dict[str, Any]) -> str:
    """How the answer's question type fared on validation, in words ("" when the model did not say)."""
    v = answer.get("validation")
    if not v:
        return ""
    record = f"{v['accuracy']:.2f} right of {v['n']} {v['type']} questions"
    if v.get("constant_accuracy") is not None:
        record += f" (one fixed answer: {v['constant_accuracy']:.2f})"
    return record + (": not better than a fixed answer, do not rely on it" if v["no_better_than_constant"] else "")


def render_html(reading: dict[str, Any], overlay: Any = None) -> str:
    """The page as a string; `overlay` is a PIL image or its PNG bytes (embedded as a base64 PNG), or None."""
    img = ""
    if overlay is not None:
        img = f"<img alt='overlay of the reading' src='data:image/png;base64,{png_base64(overlay)}'>"
    name = escape(str(reading.get("image", "")))
    size = reading.get("image_size") or []
    meta = f"model {escape(str(reading.get('model', '')))}"
    meta += f", image [{size[0]}, {size[1]}] px (height, width)" if len(size) == 2 else ""
    meta += f", prior {escape(str(reading['prior']))}" if reading.get("prior") else ""
    notice = escape(reading.get("notice") or NOTICE)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>cxrvlm reading: {name}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{name}</h1><p class='notice'>{notice}</p>"
            f"<p><small>{meta}</small></p><div class='grid'><div>{img}</div><div>{_sections(reading)}</div></div>"
            f"<p class='notice'>{notice}</p></body></html>\n")


def save_html(reading: dict[str, Any], overlay: Any, path: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(reading, overlay))
