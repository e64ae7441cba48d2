"""The two values every task maps between: a curated training example and a model's parsed prediction, and the
metric protocol that compares predictions with targets. Below tasks and metrics, so both can name them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


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
