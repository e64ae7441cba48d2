"""What the parts built on the `hf` extra share: its one guarded import (transformers, peft, accelerate) and a
transformers config's architecture as a dict."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

# transformers' config keys that describe a download, not the architecture
_NOT_ARCHITECTURE = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")


def require_hf(what: str, module: str = "transformers") -> ModuleType:
    """`module` of the optional `hf` extra (transformers, peft, accelerate or one of their submodules), imported on
    first use so the core install runs without it; an ImportError saying which feature (`what`) needs it and how
    to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module.split('.')[0]}: pip install 'cxrvlm[hf]'") from None


def architecture(config: Any) -> dict[str, Any]:
    """A transformers config as a JSON-able dict of its architecture (without the keys that describe a download)."""
    return {k: v for k, v in config.to_dict().items() if k not in _NOT_ARCHITECTURE}
