"""Named model configurations (`configs/*.json`) and the functions that build and load models.

    list_models()                                  # ["cxrvlm-small", "cxrvlm-tiny", "cxrvlm-tiny-vit", ...]
    create_model("cxrvlm-tiny", tokenizer=tok, n_layer=2)   # new, randomly initialised; overrides are config keys
    create_model("path/to/config.json")
    load_model("runs/x/final")                     # a checkpoint folder
    load_model("cxrvlm-tiny")                      # the folder of that name under $CXRVLM_MODELS

A config's "backend" key says which module builds it ("native": `cxrvlm.models.vlm`). A backend module exposes
`create(config: dict, tokenizer, where: str)` and `load(folder)`; add one line to `BACKENDS` for a new one.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from cxrvlm.models import checkpoint as ckpt
from cxrvlm.models.tokenizer import Tokenizer

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
SHIPPED_DIR = Path(__file__).parent / "weights"  # trained models that ship inside the package
BACKENDS = {
    "native": "cxrvlm.models.vlm",
    "paligemma": "cxrvlm.models.paligemma",
}
MODELS_ENV = "CXRVLM_MODELS"  # folder that holds trained checkpoints by name


def list_models() -> list[str]:
    """Names of the registered configurations."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def model_home() -> Path:
    return Path(os.environ.get(MODELS_ENV, Path.home() / ".cache" / "cxrvlm" / "models"))


def _backend(name: Any, where: str) -> ModuleType:
    if name not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {name!r}; valid: {', '.join(sorted(BACKENDS))}")
    return importlib.import_module(BACKENDS[name])


def read_model_config(name_or_path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """A registered name, a .json file or a checkpoint folder -> (config dict, where it came from)."""
    key = str(name_or_path)
    if key in list_models():
        path = CONFIG_DIR / f"{key}.json"
    elif Path(key).is_file():
        path = Path(key)
    elif Path(key).is_dir():
        return ckpt.read_config(key), str(Path(key) / ckpt.CONFIG_FILE)
    else:
        raise ValueError(f"unknown model {key!r}: not a registered name, config file or checkpoint folder; "
                         f"registered models: {', '.join(list_models())}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid JSON model config ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a model config must be a JSON object")
    return data, str(path)


def create_model(name_or_path: str | os.PathLike, tokenizer: Tokenizer | None = None, **overrides: Any) -> Any:
    """A new, randomly initialised model of a registered configuration (or a config file / a checkpoint's
    config), with `overrides` of its config keys; ValueError for an unknown name or key. Without a tokenizer the
    byte-level tokenizer is used; pass one from `Tokenizer.train` for a model to train."""
    config, where = read_model_config(name_or_path)
    if "backend" in overrides and overrides["backend"] != config.get("backend", "native"):
        raise ValueError(f"{where}: the backend cannot be overridden (use another configuration)")
    backend = _backend(config.get("backend", "native"), where)
    return backend.create({**config, **overrides}, tokenizer, where if not overrides else f"{where} + overrides")


def _bare_name(name_or_path: str | os.PathLike) -> str | None:
    """The name when `name_or_path` is a bare name ("cxrvlm-tiny"), None when it looks like a path (a Path object,
    or text holding a folder separator or starting with "." or "~")."""
    if isinstance(name_or_path, os.PathLike):
        return None
    text = str(name_or_path)
    return None if "/" in text or os.sep in text or text.startswith((".", "~")) else text


def checkpoint_folder(name_or_path: str | os.PathLike) -> Path:
    """The folder `load_model` reads. A bare name is `$CXRVLM_MODELS/<name>` (default ~/.cache/cxrvlm/models), else
    the trained weights shipped in the package (`models/weights/<name>`), and only then a folder of that name
    here: a folder in the working directory never shadows a built-in model (give `./name` to mean the folder).
    Anything else is a checkpoint folder's path."""
    name = _bare_name(name_or_path)
    for named in ((model_home() / name, SHIPPED_DIR / name) if name else ()):
        if (named / ckpt.CONFIG_FILE).is_file():
            if Path(name).is_dir():
                log.info("%s: the named model, not the folder %s here (give ./%s for the folder)", name, name, name)
            return named
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return folder
    shipped = sorted(p.name for p in SHIPPED_DIR.glob("*") if (p / ckpt.CONFIG_FILE).is_file())
    raise ValueError(f"no checkpoint {str(name_or_path)!r}: not a folder, not in {model_home()} ({MODELS_ENV}), "
                     f"and not shipped with the package (shipped: {', '.join(shipped) or 'none'}); "
                     "create_model builds an untrained model of a registered configuration")


def load_model(name_or_path: str | os.PathLike) -> Any:
    """A trained model from a checkpoint folder or by name (see `checkpoint_folder`)."""
    folder = checkpoint_folder(name_or_path)
    config = ckpt.read_config(folder)
    backend = _backend(config.get("backend", "native"), str(folder / ckpt.CONFIG_FILE))
    model = backend.load(folder)
    log.info("loaded %s from %s", config.get("name", "model"), folder)
    return model
