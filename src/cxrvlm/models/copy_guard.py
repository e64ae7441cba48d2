"""The copy guard saved beside a model (`copy_guard.npz`), in one place: the 64-bit hashes of every run of
`metrics.memorisation.RUN` words that only one training report or case note holds, so a reading can refuse a report
that copies one patient's text (`cxrvlm eval` builds it from the training split; `cxrvlm ship` copies it).

    write_copy_guard(guard, eval_dir / COPY_GUARD_FILE)
    saved_copy_guard(model_dir)      # a CopyGuard, or None when the folder has none
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cxrvlm.metrics.memorisation import CopyGuard

COPY_GUARD_FILE = "copy_guard.npz"


def saved_copy_guard(folder: str | os.PathLike | None) -> CopyGuard | None:
    """The guard in a model or evaluation folder; None without one; ValueError naming the file when it is not one."""
    if folder is None or not (Path(folder) / COPY_GUARD_FILE).is_file():
        return None
    path = Path(folder) / COPY_GUARD_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            hashes, n = data["hashes"], int(data["run_words"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a copy guard with 'hashes' and 'run_words' ({e})") from None
    if hashes.dtype != np.uint64 or hashes.ndim != 1 or n < 1:
        raise ValueError(f"{path}: 'hashes' must be a 1-D uint64 array and 'run_words' positive, got "
                         f"{hashes.dtype} {hashes.shape} and {n}")
    return CopyGuard(hashes, n)


def write_copy_guard(guard: CopyGuard, path: str | os.PathLike) -> Path:
    """Written whole or not at all (a temporary file, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, hashes=guard.hashes, run_words=np.int64(guard.n))
    os.replace(tmp, path)
    return path
