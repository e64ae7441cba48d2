"""One safetensors file with string metadata: written atomically (a temporary file beside it, then renamed, so a
crash leaves the old file or none, never half of one), read back as (metadata, tensors). No pickles."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file


def write_tensors(path: str | os.PathLike, tensors: dict[str, Any], metadata: dict[str, str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_tensors(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, Any]]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}


def read_tagged_tensors(path: str | os.PathLike, fmt: str, required: str, what: str,
                        error: type[Exception] = ValueError) -> tuple[dict[str, str], dict[str, Any]]:
    """`read_tensors` of a file `write_tensors` tagged with metadata format=`fmt` and a `required` key; `error`
    naming the file when it is missing (`what` says what it should hold) or is another kind of file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    meta, tensors = read_tensors(path)
    if meta.get("format") != fmt or required not in meta:
        raise error(f"{path}: not a {fmt} file (metadata 'format'/'{required}' missing)")
    return meta, tensors
