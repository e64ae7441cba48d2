"""`Interpreter`: one study (one or more views, optionally a prior) -> every requested task -> one `Reading`.

    interp = cxrvlm.load()                              # or Interpreter(model)
    reading = interp.interpret("chest.dcm", tasks=("classify", "detect"), questions=["Is this chest X-ray normal?"])

The images are encoded once ([frontal] or [frontal, prior | lateral], one example of the model) and every task runs
against that encoding with the task modules' own prompts and parsers (`cxrvlm.tasks`): classification and
close-ended questions by candidate likelihood, the rest by greedy generation. A malformed model output empties
that task's field and adds a warning; it never raises. An unreadable input raises a ValueError naming it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrvlm.about import DEFAULT_MODEL
from cxrvlm.infer.inputs import ImageLike, InputError, View, frontal_and_lateral, is_interval, load_study
from cxrvlm.infer.quality import assess
from cxrvlm.infer.result import DETECT_LABELS, SEGMENT_LABELS, TASKS, new_reading
from cxrvlm.io import resize_to
from cxrvlm.models import load_model, registry
from cxrvlm.models.box_calibration import saved_box_calibration
from cxrvlm.models.copy_guard import saved_copy_guard
from cxrvlm.models.operating_point import OPERATING_POINT_FILE, saved_threshold
from cxrvlm.models.question_types import saved_question_types
from cxrvlm.models.view_gate import ViewGate
from cxrvlm.tasks import ReadOptions, Task, get_task
from cxrvlm.tasks.base import DEFAULT_THRESHOLD
from cxrvlm.tasks.vqa import DEFAULT_QUESTIONS, make_question
from cxrvlm.tokens.shape import AnswerShape

log = logging.getLogger(__name__)


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = round(self.ms.get(stage, 0.0) + (time.perf_counter() - start) * 1000.0, 1)


@dataclass
class _Study:
    """A loaded study, encoded once; it is what each task's `read` is given (`cxrvlm.tasks.ReadContext`).
    `single` = the frontal view's features alone, `pair` = frontal + `second_view`."""

    model: Any
    frontal: View
    second_view: View | None  # the prior's frontal view, else a lateral view, else None
    second: str | None  # "prior", "lateral" or None
    prior_days: float | None
    options: ReadOptions
    warnings: list[str] = field(default_factory=list)
    single: Any = None
    pair: Any = None

    @property
    def image_size(self) -> tuple[int, int]:
        return self.frontal.size

    @property
    def pixels(self) -> np.ndarray:
        return self.frontal.pixels

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def _features(self, pair: bool) -> Any:
        return self.pair if pair and self.pair is not None else self.single

    def labels(self) -> dict[str, float] | None:
        if not getattr(self.model, "label_names", None):
            return None
        return self.model.label_probs(image_features=self.single)[0]

    def label_maps(self) -> np.ndarray | None:
        maps = getattr(self.single, "label_maps", None)  # from the frontal view's one pass of the encoder
        return None if maps is None else maps[0].cpu().numpy()

    def score(self, prefix: str, candidates: Sequence[str], pair: bool = False) -> list[float]:
        probs = self.model.score_candidates(images=None, prefix=prefix, candidates=list(candidates),
                                            image_features=self._features(pair))
        return [float(p) for p in probs]

    def generate(self, prefix: str, budget: int, shape: AnswerShape,
                 pair: bool = False) -> tuple[str, list[tuple[str, float]]]:
        """Greedy answer, kept to the task's answer shape, and its (token, probability) list; the budget is cut to
        what the context has room for."""
        limit = getattr(self.model.config, "max_text_len", None)
        if isinstance(limit, int):
            budget = max(1, min(budget, limit - len(self.model.tokenizer.encode(prefix)) - 2))
        texts, token_scores = self.model.generate(images=None, prefixes=[prefix], image_features=self._features(pair),
                                                  max_new_tokens=budget, return_scores=True, answer_shapes=[shape])
        return texts[0], list(token_scores[0])


class Interpreter:
    """Runs every readable task of a model on a study. `threshold` overrides the TB operating point; `model_dir` is
    the model's folder, read for `operating_point.json`, `box_calibration.json`, `copy_guard.npz` and
    `question_types.json`; `refine_masks` redraws the decoded masks on the film with the mask refiner
    (`cxrvlm.tokens.seg_refine`)."""

    def __init__(self, model: Any, name: str | None = None, threshold: float | None = None,
                 model_dir: str | os.PathLike | None = None, detect_labels: Sequence[str] = DETECT_LABELS,
                 segment_labels: Sequence[str] = SEGMENT_LABELS, refine_masks: bool = True,
                 view_gate: Any | None = None) -> None:
        self.model = model
        self.view_gate = view_gate  # `models.view_gate.ViewGate`: refuses what is not a frontal film; None: rules only
        self.name = name or str(getattr(model.config, "name", "model"))
        value, source = _threshold(threshold, saved_threshold(model_dir))
        self.options = ReadOptions(threshold=value, threshold_source=source,
                                   box_calibration=saved_box_calibration(model_dir),
                                   copy_guard=saved_copy_guard(model_dir),
                                   question_types=saved_question_types(model_dir),
                                   detect_labels=_labels(detect_labels, "detect_labels"),
                                   segment_labels=_labels(segment_labels, "segment_labels"),
                                   refine_masks=bool(refine_masks))

    @property
    def threshold(self) -> float:
        return self.options.threshold

    @property
    def threshold_source(self) -> str:
        return self.options.threshold_source

    # ------------------------------------------------------------------------------------------------ public
    def interpret(self, images: ImageLike | Sequence[ImageLike], tasks: Sequence[str] = TASKS,
                  questions: Sequence[str | dict] | None = None, prior: ImageLike | None = None,
                  prior_days: float | None = None, lateral: ImageLike | None = None) -> Any:
        """One image -> its reading as a JSON-ready dict (see `cxrvlm.infer.result`); a list of images -> a batch:
        a list of readings, one per image, each read alone (an image that cannot be read gives
        {"image": ..., "error": ...} and the rest are read).

        images: a path / array / XrayImage (or a list of them: a batch). A study's other views are explicit:
        `lateral` a lateral view of the same study, `prior` the frontal view of an earlier study of the patient and
        `prior_days` the days between the two (needed for the comparison report). questions: strings or
        {"question": ..., "candidates": [...]}; default `vqa.DEFAULT_QUESTIONS`. Raises ValueError for an unknown
        task or (one image) an unreadable image; never for a malformed model output.
        """
        if isinstance(images, (list, tuple)):
            if prior is not None or lateral is not None:
                raise InputError("a list of images is a batch, each read alone: give one image with lateral= or "
                                 "prior= to read a study with several views")
            if not images:
                raise InputError("no image given (an empty list)")
            parse_tasks(tasks)  # a wrong task is the caller's error, raised once, not one per image
            return [self._one_of_batch(image, tasks, questions) for image in images]
        return self.interpret_with_pixels(images, tasks, questions, prior, prior_days, lateral)[0]

    def _one_of_batch(self, image: ImageLike, tasks: Sequence[str], questions: Any) -> dict[str, Any]:
        try:
            return self.interpret_with_pixels(image, tasks, questions)[0]
        except (ValueError, OSError) as e:  # an unreadable image costs its own reading only
            return {"image": str(image) if isinstance(image, (str, os.PathLike)) else type(image).__name__,
                    "error": str(e)}

    def interpret_with_pixels(self, image: ImageLike, tasks: Sequence[str] = TASKS,
                              questions: Sequence[str | dict] | None = None, prior: ImageLike | None = None,
                              prior_days: float | None = None,
                              lateral: ImageLike | None = None) -> tuple[dict[str, Any], np.ndarray]:
        """`interpret` of one study, also returning the frontal view's pixels (float32 (H, W) in [0, 1]) that the
        boxes and masks refer to, for drawing an overlay without reading the file again."""
        if isinstance(image, (list, tuple)):
            raise InputError("interpret_with_pixels reads one study: one image, with lateral= / prior= for its "
                             "other views")
        start, timer = time.perf_counter(), _Timer()
        chosen = [get_task(t) for t in parse_tasks(tasks)]
        options = dataclasses.replace(self.options, questions=tuple(
            make_question(q) for q in (questions or DEFAULT_QUESTIONS)))
        with timer("read"):
            study = self._load([image] if lateral is None else [image, lateral], prior, prior_days, options)
        h, w = study.frontal.size
        with timer("quality"):
            quality = assess(study.frontal.pixels, self.view_gate)
        reading = new_reading(study.frontal.name, self.name, [h, w], [t.name for t in chosen],
                              study.second_view.name if study.second == "prior" else None, quality, study.warnings)
        if not quality["assessable"]:  # nothing to read: no verdict, only the reasons
            study.warn("not assessable: " + "; ".join(quality["reasons"]))
        else:
            self._read_tasks(study, chosen, reading, timer)
        timer.ms["total"] = round((time.perf_counter() - start) * 1000.0, 1)
        reading["timing_ms"] = timer.ms
        return reading, study.frontal.pixels

    def _read_tasks(self, study: _Study, chosen: list[Task], reading: dict[str, Any], timer: _Timer) -> None:
        with timer("encode"):
            self._encode(study, any(t.wants_pair(study) for t in chosen if t.wants_pair))
        for task in chosen:
            with timer(task.name):
                _read_into(reading, task, study)

    # ------------------------------------------------------------------------------------------------ inputs
    def _load(self, images: Any, prior: Any, prior_days: float | None, options: ReadOptions) -> _Study:
        _check_days(prior_days)
        frontal, lateral = frontal_and_lateral(load_study(images))
        prior_frontal = frontal_and_lateral(load_study(prior))[0] if prior is not None else None
        unusable = assess(prior_frontal.pixels, self.view_gate)["reasons"] if prior_frontal is not None else []
        if prior_frontal is None or unusable:
            study = _Study(self.model, frontal, lateral, "lateral" if lateral is not None else None, prior_days,
                           options)
            if unusable:
                study.warn(f"the prior was not used: {'; '.join(unusable)}")
            return study
        study = _Study(self.model, frontal, prior_frontal, "prior", prior_days, options)
        if lateral is not None:
            study.warn("the lateral view was not used: the model takes a frontal view with either a lateral "
                       "view or a prior study, and a prior was given")
        return study

    def _pixels(self, view: View) -> np.ndarray:
        """A view as the model was trained to see it: resized to its square input, kept at 8-bit levels."""
        size = int(self.model.config.image_size)
        small = resize_to(view.pixels, (size, size))
        return (np.round(np.clip(small, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)

    def _encode(self, study: _Study, use_pair: bool) -> None:
        """Encode [frontal] or, when a task reads both, [frontal, second] once; the single-view features are then
        the first view's slot."""
        frontal = self._pixels(study.frontal)
        if study.second_view is None or not use_pair:
            study.single = self.model.encode_images([frontal])
            return
        study.pair = self.model.encode_images([frontal, self._pixels(study.second_view)])
        n = getattr(self.model, "tokens_per_image", None)
        tokens, mask = getattr(study.pair, "tokens", None), getattr(study.pair, "mask", None)
        if isinstance(n, int) and tokens is not None and mask is not None:
            # views are encoded independently, each with its slot's embedding: slot 0 is the single-view input (and
            # the label head reads slot 0 too)
            study.single = type(study.pair)(tokens[:, :n], mask[:, :n], getattr(study.pair, "label_probs", None),
                                            getattr(study.pair, "label_maps", None))
        else:
            study.single = self.model.encode_images([frontal])


def _read_into(reading: dict[str, Any], task: Task, study: _Study) -> None:
    """One task's fields into the reading; a task that fails (e.g. a prompt the model refuses) leaves them empty
    with a warning, and the other tasks still run."""
    try:
        reading.update(task.read(study))
    except ValueError as e:
        log.debug("%s failed on %s", task.name, reading["image"], exc_info=True)
        study.warn(f"{task.name}: failed: {e}")


def _threshold(given: float | None, saved: float | None) -> tuple[float, str]:
    """(TB threshold, where it came from): the argument, else the model's operating point file, else 0.5."""
    if given is not None:
        if not 0.0 <= float(given) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {given}")
        return float(given), "argument"
    if saved is not None:
        return saved, OPERATING_POINT_FILE
    return DEFAULT_THRESHOLD, "default"


def _labels(labels: Sequence[str], name: str) -> tuple[str, ...]:
    """Object labels for a detect/segment prompt: one or more non-empty phrases (checked now, not at the first
    image)."""
    out = tuple(str(x) for x in labels)
    if not out or not all(x.strip() for x in out):
        raise ValueError(f"{name}: needs one or more non-empty labels, got {list(labels)}")
    return out


def parse_tasks(tasks: Sequence[str] | str) -> list[str]:
    items = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else [str(t).strip() for t in tasks]
    items = [t for t in items if t]
    unknown = [t for t in items if t not in TASKS]
    if unknown or not items:
        raise ValueError(f"unknown or no task(s) {unknown or items}; valid tasks: {', '.join(TASKS)}")
    return list(dict.fromkeys(items))


def _check_days(days: Any) -> None:
    if days is not None and not is_interval(days):
        raise InputError(f"prior_days must be a finite number of days, 0 or more, got {days!r}")


def load(name_or_path: str | os.PathLike = DEFAULT_MODEL, **kwargs: Any) -> Interpreter:
    """An Interpreter over `load_model(name_or_path)` with the shipped view gate; the model's folder is read for its
    TB operating point, box calibration, copy guard and question-type figures. Keyword arguments go to
    `Interpreter` (threshold, detect_labels, segment_labels, refine_masks, view_gate: None reads every image the
    content rules let through)."""
    model = load_model(name_or_path)
    kwargs.setdefault("view_gate", ViewGate.default())
    return Interpreter(model, name=str(name_or_path), model_dir=_checkpoint_folder(name_or_path), **kwargs)


def _checkpoint_folder(name_or_path: str | os.PathLike) -> Path | None:
    """The folder `load_model` reads for this name or path (None when it cannot be told)."""
    try:
        return registry.checkpoint_folder(name_or_path)
    except ValueError:
        return None
