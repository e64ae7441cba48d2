"""Strict JSON values and JSON lines, for every file the project writes (curated splits, metrics, predictions,
operating points, training logs): NaN/inf (an unknown label, an undefined metric) written as null, numpy values as
Python ones, files replaced atomically; a reader that skips a torn last line (a run killed while writing)."""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy scalars/arrays -> Python values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return clean(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(obj: Any) -> str:
    """One JSON line (UTF-8 text kept as is, NaN written as null)."""
    return json.dumps(clean(obj), ensure_ascii=False, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """`obj` as indented strict JSON (`clean`), written whole or not at all: a temporary file beside `path` (its
    folder made if need be), then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(obj), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(dumps(row) + "\n")
    tmp.replace(path)  # a reader never sees a half-written file


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file ([] when it does not exist). A line that does not parse as an object
    (torn by a kill mid-write, or garbage) is skipped with one warning naming the file and the lines."""
    if not path.is_file():
        return []
    rows, bad = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(lineno)
    if bad:
        log.warning("%s: skipped %d line(s) that are not JSON objects (line %s): a torn write?", path, len(bad),
                    ", ".join(map(str, bad[:5])))
    return rows
