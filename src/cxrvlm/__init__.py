"""cxrvlm: one multi-task vision-language model for chest X-ray interpretation."""
from __future__ import annotations

import os
from typing import Any

from cxrvlm.about import DEFAULT_MODEL, NOTICE, VERSION

__version__ = VERSION
__all__ = ["NOTICE", "__version__", "load"]


def load(name_or_path: str | os.PathLike = DEFAULT_MODEL, **kwargs: Any) -> Any:
    """An `Interpreter` over a trained model (a name or a checkpoint folder): `cxrvlm.load().interpret("x.png")`.
    Imported on call, so `import cxrvlm` stays light (no torch)."""
    from cxrvlm.infer import load as _load

    return _load(name_or_path, **kwargs)
