"""JSON lines as the curated files use them: NaN (an unknown label) written as null, numpy values as Python ones,
files replaced atomically."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


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


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(dumps(row) + "\n")
    tmp.replace(path)  # a reader never sees a half-written file
