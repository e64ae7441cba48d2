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
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Protocol

from cxrvlm.tokens.shape import AnswerShape


@dataclass
class Example:
    """One training/evaluation example. `images` are file paths: the study's views in order, then the prior's.

    `target` holds the structured ground truth (JSON-able) the task's metric compares a parsed prediction with;
    `meta` holds facts about the example (e.g. {"templated": True}, the view positions, the prior interval).
    """

    task: str
    images: list[str]
    prefix: str
    suffix: str
    study_id: str
    patient_id: str
    source: str
    target: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Example:
        missing = [k for k in ("task", "images", "prefix", "suffix", "study_id", "patient_id", "source") if k not in d]
        if missing:
            raise ValueError(f"example is missing field(s) {missing}")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Prediction:
    """A task's parse of model text. `valid` False (with `reason`) for malformed text; fields a task does not use stay
    empty. Boxes are normalised (x1, y1, x2, y2); masks are bool H x W arrays at `image_size` when one was given."""

    task: str
    valid: bool = True
    reason: str = ""
    text: str = ""
    label: str | None = None
    answer: str | None = None
    labels: list[str] = field(default_factory=list)
    boxes: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)
    masks: list[tuple[str, tuple[float, float, float, float], Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Metric(Protocol):
    def update(self, pred: Prediction, target: dict[str, Any]) -> None: ...
    def compute(self) -> dict[str, float]: ...
    def reset(self) -> None: ...


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
