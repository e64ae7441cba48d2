"""The `Task` object every task module builds, once, and the registry the rest of the house asks.

A task module (`cxrvlm/tasks/<name>.py`) holds its whole text format and ends with

    TASK = register(Task(name="detect", format=format, parse=parse, metric=metric, max_new_tokens=96, ...))

Curation calls `task.format`, training learns prefix -> suffix, evaluation feeds `task.parse`d generations to
`task.metric()`, inference calls `task.read`. No other package knows a task's prompts, answers or rules: they ask
`get_task(name)` / `list_tasks()` / `readable_tasks()` and read the Task's fields.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from cxrvlm.examples import Example, Metric, Prediction
from cxrvlm.metrics.memorisation import CopyGuard
from cxrvlm.records import Study
from cxrvlm.tokens.shape import AnswerShape

TokenScores = list[tuple[str, float]]
DEFAULT_THRESHOLD = 0.5  # the screening operating point when neither the caller nor the model's folder gives one


@dataclass
class ReadOptions:
    """What the person asking for a reading chose (the interpreter's arguments)."""

    threshold: float = DEFAULT_THRESHOLD  # TB operating point: P(tuberculosis) at or above it reads "tuberculosis"
    threshold_source: str = "default"  # where the threshold came from: "argument", "operating_point.json", "default"
    detect_labels: tuple[str, ...] = ()
    segment_labels: tuple[str, ...] = ()
    questions: tuple[Any, ...] = ()  # `vqa.Question`s
    refine_masks: bool = True  # redraw decoded masks on the film (`cxrvlm.tokens.seg_refine`)
    box_calibration: tuple[float, float] | None = None  # Platt (a, b): box score -> P(IoU >= 0.5); None: raw
    copy_guard: CopyGuard | None = None  # the training text's patient-specific runs a report may not copy
    # close-ended answers' validation figures per task and question type (`models.question_types`): each answer
    # says its own
    question_types: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)


class ReadContext(Protocol):
    """One encoded study, as the interpreter hands it to a task's `read`. `second` says what the optional second
    encoded view is ("prior", "lateral" or None); `pair=True` asks with both views, else the frontal view alone."""

    image_size: tuple[int, int]  # (H, W) of the frontal view as given
    pixels: np.ndarray  # the frontal view, float32 (H, W) in [0, 1]
    second: str | None
    prior_days: float | None
    options: ReadOptions

    def score(self, prefix: str, candidates: Sequence[str], pair: bool = False) -> list[float]: ...
    def generate(self, prefix: str, budget: int, shape: AnswerShape,
                 pair: bool = False) -> tuple[str, TokenScores]: ...
    def warn(self, message: str) -> None: ...

    def labels(self) -> Mapping[str, float] | None:
        """The label head's probabilities for the frontal view (None: the model has no label head)."""

    def label_maps(self) -> np.ndarray | None:
        """The label head's class activation maps for the frontal view, (labels, g, g) in the head's order (None:
        the model has no label head)."""


@dataclass(frozen=True)
class Task:
    """Everything the house knows about one task. Required: name, format, parse, metric, max_new_tokens, headline,
    answer_shape, coordinates; the rest is optional behaviour some tasks have."""

    name: str
    format: Callable[[Study, random.Random], list[Example]]  # a study -> its examples (prefix -> suffix)
    parse: Callable[..., Prediction]  # (text, image_size=None, **hints) -> Prediction; never raises
    metric: Callable[..., Metric]  # (threshold=None, fast=False) -> Metric
    max_new_tokens: int  # answer budget, the same in evaluation and inference
    headline: tuple[str, ...]  # metric keys that lead the eval report, best first (the first one present is used)
    answer_shape: AnswerShape  # the <loc>/<seg> structure greedy decoding keeps to
    coordinates: bool  # answers hold positions: images may not be moved (augmentation, --perturb) unless...
    zoom_shift_safe: bool = False  # ...every position is a loc token, so a zoom/shift can rewrite the answer
    tokens_per_object: int = 0  # budget per requested object (detect/segment prompts name several)
    parse_hints: tuple[str, ...] = ()  # target keys handed to `parse` as keyword arguments when present
    candidates: Callable[[Example], list[str]] | None = None  # close-ended: answered by candidate likelihood
    screening: tuple[str, str] | None = None  # (target kind, positive answer) of a binary screening test
    # the screening question asked of this example's film when its study has another disease and not the screened
    # one (the test's false alarms, which `format` makes no case of); None for other examples
    other_disease_case: Callable[[Example], Example | None] | None = None
    keep_together: Callable[[Example], tuple] | None = None  # examples sampled as one unit (a chain's steps)
    chain_prompt: Callable[[Example, str], str | None] | None = None  # step-2 prefix from the model's step-1 text
    reading: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # reading field -> empty value
    read: Callable[[ReadContext], dict[str, Any]] | None = None  # inference: fills the `reading` fields
    wants_pair: Callable[[ReadContext], bool] | None = None  # whether `read` uses the second view
    by_head: bool = False  # answered by the model's label head, not as text: the decoder never learns it
    # the example's candidate probabilities from the label head's outputs and the TB operating point, when the head
    # answers it (a model with a label head reads these instead of the decoder's likelihoods, as a reading does);
    # None: the decoder answers
    from_head: Callable[[Example, Mapping[str, float], float | None], dict[str, float] | None] | None = None
    # the example's answer text stated from the label head's outputs and the TB operating point, which the model
    # then says instead of generating it, so the text cannot contradict the head; None: the decoder answers
    text_from_head: Callable[[Example, Mapping[str, float], float | None], str | None] | None = None
    # the generated text checked against the label head's calls (TB at the operating point), whether a prior study
    # was given and the copy guard (None: not checked for copies): (the text to give, what was wrong with the
    # generated one: a contradiction, a prior it invents, a copied run); a text with a problem is replaced
    check_with_head: Callable[[str, Mapping[str, float], float | None, bool, CopyGuard | None],
                              tuple[str, list[str]]] | None = None

    def budget(self, n_objects: int = 0) -> int:
        """New tokens to allow for an answer naming `n_objects` objects: `max_new_tokens`, or more when the objects
        asked for need more (`tokens_per_object` each, and a few for separators)."""
        if not self.tokens_per_object:
            return self.max_new_tokens
        return max(self.max_new_tokens, self.tokens_per_object * max(n_objects, 1) + 8)

    def hints(self, target: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments `parse` takes from an example's target (the prompt's candidates, labels, step)."""
        return {k: target[k] for k in self.parse_hints if target.get(k) not in (None, [], ())}

    def screening_answer(self, probs: Mapping[str, float], threshold: float | None) -> str:
        """The screening test's answer from its candidates' probabilities: the positive one when its probability
        reaches `threshold` (the operating point), else the likeliest other candidate; without a threshold, the
        likeliest of all."""
        positive = self.screening[1]
        if threshold is None:
            return max(probs, key=probs.get)
        if probs.get(positive, 0.0) >= threshold:
            return positive
        return max((c for c in probs if c != positive), key=probs.get)

    def screening_case(self, example: Example) -> bool:
        """Whether `example` is a case of this task's binary screening test."""
        return self.screening is not None and example.task == self.name and \
            example.target.get("kind") == self.screening[0]


QUESTION_TYPE_KEY = "template"  # a close-ended target's question type (VQA: view, label, extent, change, ...)


def question_type(target: Mapping[str, Any]) -> str | None:
    """The type of a close-ended question's target, None for any other target."""
    kind = target.get(QUESTION_TYPE_KEY)
    return str(kind) if kind and target.get("closed") and "answer" in target else None


_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Record a task (call once, at the bottom of its module); returns it. A name registered twice is a bug."""
    if task.name in _REGISTRY and _REGISTRY[task.name] is not task:
        raise ValueError(f"task {task.name!r} is registered twice")
    _REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task called `name`; ValueError listing the valid names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_tasks() -> list[str]:
    """Every registered task's name, sorted."""
    return sorted(_REGISTRY)


def readable_tasks() -> list[str]:
    """The tasks inference can run on an image, in the order a reading lists them."""
    return [t.name for t in _REGISTRY.values() if t.read is not None]


def screening_task() -> Task:
    """The task that holds the binary screening test (TB); ValueError when none is registered."""
    found = [t for t in _REGISTRY.values() if t.screening is not None]
    if len(found) != 1:
        raise ValueError(f"expected one task with a screening test, found {[t.name for t in found]}")
    return found[0]


def mask_task() -> Task:
    """The task whose answers are masks (segmentation); ValueError when none or several are registered."""
    found = [t for t in _REGISTRY.values() if t.answer_shape.segs]
    if len(found) != 1:
        raise ValueError(f"expected one task answering with masks, found {[t.name for t in found]}")
    return found[0]


def reading_fields() -> dict[str, Any]:
    """Every readable task's reading fields with their empty values, in reading order."""
    return {k: v for t in _REGISTRY.values() if t.read is not None for k, v in t.reading.items()}
