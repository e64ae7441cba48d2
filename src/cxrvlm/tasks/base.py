"""What every task module shares: the training example, the parsed prediction, the metric protocol, the registry.

A task module defines, once, its text format:

    NAME = "detect"
    GEOMETRY_IN_ANSWER = True   # whether the answer encodes positions (then training keeps the image geometry)
    ZOOM_SHIFT_SAFE = True      # optional: all positions are loc tokens, so training may zoom/shift and rewrite them
    ANSWER_SHAPE = BOXES        # optional: the <loc>/<seg> structure greedy decoding keeps to (`cxrvlm.tokens.shape`)
    def format(study: Study, rng: random.Random) -> list[Example]   # prefix (prompt) -> suffix (answer)
    def parse(text: str, image_size: tuple[int, int] | None = None) -> Prediction   # never raises
    def metric() -> Metric                                           # update(pred, target) / compute() / reset()

and registers itself with `@register_task`. Nothing outside the module knows the text format.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from cxrvlm.examples import Example, Metric, Prediction  # noqa: F401 - what task modules build
from cxrvlm.tokens.shape import AnswerShape

_TASK_MODULES = ("classify", "vqa", "report", "detect", "segment", "ground", "findings_then_report")
_REGISTRY: dict[str, ModuleType] = {}


def register_task(module_name: str) -> None:
    """Record a task module by its NAME (call at the bottom of the module: `register_task(__name__)`)."""
    import sys

    module = sys.modules[module_name]
    _REGISTRY[module.NAME] = module


def get_task(name: str) -> ModuleType:
    """The task module called `name`; ValueError listing the valid names otherwise."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def answer_shape(name: str) -> AnswerShape | None:
    """The token structure task `name`'s answers keep to (None: the task declares none; decoding is free)."""
    return getattr(get_task(name), "ANSWER_SHAPE", None)


def list_tasks() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def _load_all() -> None:
    for m in _TASK_MODULES:
        try:
            importlib.import_module(f"cxrvlm.tasks.{m}")
        except ModuleNotFoundError as e:
            if e.name != f"cxrvlm.tasks.{m}":
                raise
