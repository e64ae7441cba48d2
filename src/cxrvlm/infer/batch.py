"""A batch of readings as a table: one CSV row per film, and the summary line `cxrvlm interpret` ends with.

    row(reading, ms)      # {"file", "verdict", "tb_probability", "tb_label", "findings_called", "quality", "error", "ms"}
    summary(rows)         # "100 films: 97 read, 2 not assessable, 1 failed; median 231 ms a film"
"""
from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

COLUMNS = ("file", "verdict", "tb_probability", "tb_label", "findings_called", "quality", "view", "error", "ms")


def row(reading: dict[str, Any], ms: float | None) -> dict[str, Any]:
    """One film's row: its verdict and TB reading, the findings called ("; "-joined), whether it was assessable
    (and why not), the view the gate saw, its error if it failed, and the milliseconds it took (empty: not
    measured)."""
    quality = reading.get("quality") or {}
    tb = reading.get("tb") or {}
    verdict = reading.get("verdict") or {}
    assessable = quality.get("assessable")
    return {"file": reading.get("image", ""), "verdict": verdict.get("label", ""),
            "tb_probability": tb.get("probability", ""), "tb_label": tb.get("label", ""),
            "findings_called": "; ".join(verdict.get("called", [])),
            "quality": "" if "error" in reading else "assessable" if assessable else
            "not assessable: " + "; ".join(quality.get("reasons", [])),
            "view": quality.get("view") or "", "error": reading.get("error", ""),
            "ms": "" if ms is None else round(ms)}


def write_csv(rows: Sequence[dict[str, Any]], target: str | Path | TextIO) -> None:
    """The rows as CSV (a header, then a line per film) to a path or an open text stream."""
    if isinstance(target, (str, Path)):
        with open(target, "w", newline="") as f:
            write_csv(rows, f)
        return
    writer = csv.DictWriter(target, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)


def summary(rows: Sequence[dict[str, Any]]) -> str:
    failed = sum(bool(r["error"]) for r in rows)
    refused = sum(r["quality"].startswith("not assessable") for r in rows)
    read = len(rows) - failed - refused
    times = [r["ms"] for r in rows if not r["error"]]
    median = f"; median {statistics.median(times):.0f} ms a film" if times else ""
    return f"{len(rows)} film(s): {read} read, {refused} not assessable, {failed} failed{median}"
