"""Inference: one study -> every task -> one structured reading (+ overlay picture and HTML page).

    import cxrvlm
    reading = cxrvlm.load("cxrvlm-tiny").interpret("chest.png")      # dict, see cxrvlm.infer.result
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TASKS", "Interpreter", "check_reading", "example_image", "load", "render_html", "render_overlay"]

# Lazy, not plain imports: interpreter.py loads torch (models, mask codecs), which `cxrvlm interpret --help` and
# the light modules (result, html, phantom) must not pay for through this package.
_LAZY = {
    "Interpreter": "cxrvlm.infer.interpreter",
    "load": "cxrvlm.infer.interpreter",
    "TASKS": "cxrvlm.infer.result",
    "check_reading": "cxrvlm.infer.result",
    "example_image": "cxrvlm.infer.phantom",
    "render_html": "cxrvlm.infer.html",
    "render_overlay": "cxrvlm.infer.overlay",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cxrvlm.infer' has no attribute {name!r}")
