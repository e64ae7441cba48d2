"""Checkpoint folders: `config.json` + `model.safetensors` + `tokenizer.json`, written atomically. No pickles.

Atomic: the files are written into a temporary sibling folder which then replaces the target with `os.replace`
(a folder being replaced is first moved aside, then removed), so a reader never sees a half-written checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file

log = logging.getLogger(__name__)

CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be read; the message names the file and the reason."""


def write_folder(folder: str | os.PathLike, writers: dict[str, Callable[[Path], None]]) -> Path:
    """Create `folder` atomically: each `writers[name](path)` writes one file into a temporary sibling first."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for name, write in writers.items():
            write(tmp / name)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint is an ordinary folder
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved checkpoint %s", folder)
    return folder


def write_json(data: dict[str, Any]) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(data, indent=1) + "\n")


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """`folder/config.json` as a dict, after checking the folder has the weights file too."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder ({CONFIG_FILE} is missing)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def read_weights(folder: str | os.PathLike) -> dict[str, Any]:
    """`folder/model.safetensors` -> {name: tensor} (on the CPU)."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{Path(folder)}: {WEIGHTS_FILE} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read the weights ({e})") from None


def load_weights_into(model: Any, folder: str | os.PathLike) -> Any:
    """Fill `model` with `folder/model.safetensors`; every name must match. Returns the model in eval mode."""
    missing, unexpected = model.load_state_dict(read_weights(folder), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{folder}: weights do not match the config (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]})")
    return model.eval()
