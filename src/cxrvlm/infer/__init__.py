"""Inference: one study -> every task -> one structured reading (+ overlay picture and HTML page).

    import cxrvlm
    reading = cxrvlm.load().interpret("chest.png")      # the built-in model; dict, see cxrvlm.infer.result
"""
from __future__ import annotations

from cxrvlm.infer.html import render_html
from cxrvlm.infer.interpreter import Interpreter, load
from cxrvlm.infer.overlay import render_overlay
from cxrvlm.infer.phantom import example_image
from cxrvlm.infer.result import TASKS, check_reading

__all__ = ["TASKS", "Interpreter", "check_reading", "example_image", "load", "render_html", "render_overlay"]
