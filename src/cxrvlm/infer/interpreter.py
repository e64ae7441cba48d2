"""`Interpreter`: one study (one or more views, optionally a prior) -> every requested task -> one `Reading`.

    interp = cxrvlm.load("cxrvlm-tiny")                  # or Interpreter(model)
    reading = interp.interpret("chest.dcm", tasks=("classify", "detect"), questions=["Is this chest X-ray normal?"])

The images are encoded once ([frontal] or [frontal, prior | lateral], one example of the model) and every task runs
against that encoding with the task modules' own prompts and parsers (`cxrvlm.tasks`): classification and
close-ended questions by candidate likelihood, the rest by greedy generation. A malformed model output empties
that task's field and adds a warning; it never raises. An unreadable input raises a ValueError naming it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrvlm.infer import scores as sc
from cxrvlm.infer.inputs import ImageLike, InputError, View, frontal_and_lateral, load_study
from cxrvlm.infer.questions import DEFAULT_QUESTIONS, Question, make_question
from cxrvlm.infer.result import (DETECT_LABELS, SEGMENT_LABELS, TASKS, Answer, Detection, Finding, Reading,
                                 Segmentation, TBResult)
from cxrvlm.io import resize_to
from cxrvlm.tasks import classify, detect, report, segment, vqa
from cxrvlm.tokens.rle import rle_encode
from cxrvlm.tokens.seg_refine import refine_objects
from cxrvlm.tokens.shape import AnswerShape

log = logging.getLogger(__name__)

OPERATING_POINT_FILE = "operating_point.json"
DEFAULT_THRESHOLD = 0.5
# Answer budgets in tokens: a trained model stops at <eos> long before; an untrained one is cut here.
MAX_TOKENS = {"report": 160, "detect_object": 24, "segment_object": 40, "vqa": 32}


def read_operating_point_file(path: str | os.PathLike) -> dict[str, Any]:
    """An operating point as evaluation writes it: {"threshold": t, ...}, also found nested under "operating_point"
    (a metrics.json) or "tb"; ValueError naming the file when it is unreadable or t is not in [0, 1]."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None
    for key in ("operating_point", "tb"):
        if isinstance(data, dict) and "threshold" not in data and isinstance(data.get(key), dict):
            data = data[key]
    value = data.get("threshold") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{path}: 'threshold' must be a probability in [0, 1], got {value!r}")
    return {**data, "threshold": float(value)}


def read_operating_point(folder: str | os.PathLike | None) -> float | None:
    """The TB threshold saved with a model (`operating_point.json` in its folder), None when it has none."""
    if folder is None or not (Path(folder) / OPERATING_POINT_FILE).is_file():
        return None
    return read_operating_point_file(Path(folder) / OPERATING_POINT_FILE)["threshold"]


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
    """A loaded study and its encoding: `single` = the frontal view alone, `pair` = frontal + `second`."""

    frontal: View
    second: View | None  # the prior's frontal view, else a lateral view, else None
    second_is_prior: bool
    use_pair: bool = False  # whether a task asked for reads the second view (else it is not encoded)
    single: Any = None
    pair: Any = None


class Interpreter:
    """Runs every task of a model on a study. `threshold` overrides the TB operating point; `model_dir` is the
    model's folder, read for `operating_point.json`; `refine_masks` redraws the decoded masks on the film with the
    mask refiner (`cxrvlm.tokens.seg_refine`)."""

    def __init__(self, model: Any, name: str | None = None, threshold: float | None = None,
                 model_dir: str | os.PathLike | None = None, detect_labels: Sequence[str] = DETECT_LABELS,
                 segment_labels: Sequence[str] = SEGMENT_LABELS, refine_masks: bool = True) -> None:
        self.model = model
        self.refine_masks = bool(refine_masks)
        self.name = name or str(getattr(model.config, "name", "model"))
        saved = read_operating_point(model_dir)
        if threshold is not None:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"threshold must be in [0, 1], got {threshold}")
            self.threshold, self.threshold_source = float(threshold), "argument"
        elif saved is not None:
            self.threshold, self.threshold_source = saved, OPERATING_POINT_FILE
        else:
            self.threshold, self.threshold_source = DEFAULT_THRESHOLD, "default"
        self.detect_labels = [str(x) for x in detect_labels]
        self.segment_labels = [str(x) for x in segment_labels]
        detect.prompt(self.detect_labels)  # validates the labels now rather than at the first image
        segment.prompt(self.segment_labels)

    # ------------------------------------------------------------------------------------------------ public
    def interpret(self, images: ImageLike | Sequence[ImageLike], tasks: Sequence[str] = TASKS,
                  questions: Sequence[str | dict] | None = None, prior: ImageLike | Sequence[ImageLike] | None = None,
                  prior_days: float | None = None) -> dict[str, Any]:
        """One study -> the reading as a JSON-ready dict (see `cxrvlm.infer.result`).

        images: a path / array / XrayImage, or a list of the study's views (frontal first). prior: the same for an
        earlier study of the patient; prior_days: days between the two (needed for the comparison report).
        questions: strings or {"question": ..., "candidates": [...]}; default `DEFAULT_QUESTIONS` when "vqa" is
        asked. Raises ValueError for an unknown task or an unreadable image; never for a malformed model output.
        """
        return self.interpret_with_pixels(images, tasks, questions, prior, prior_days)[0]

    def interpret_with_pixels(self, images: ImageLike | Sequence[ImageLike], tasks: Sequence[str] = TASKS,
                              questions: Sequence[str | dict] | None = None,
                              prior: ImageLike | Sequence[ImageLike] | None = None,
                              prior_days: float | None = None) -> tuple[dict[str, Any], np.ndarray]:
        """`interpret`, also returning the frontal view's pixels (float32 (H, W) in [0, 1]) that the boxes and
        masks refer to, for drawing an overlay without reading the file again."""
        start, timer = time.perf_counter(), _Timer()
        tasks = parse_tasks(tasks)
        qs = [make_question(q) for q in (questions or (DEFAULT_QUESTIONS if "vqa" in tasks else ()))]
        with timer("read"):
            study, warnings = self._load(images, prior, prior_days, tasks, qs)
        h, w = study.frontal.size
        reading = Reading(image=study.frontal.name, model=self.name, image_size=[h, w], tasks=list(tasks),
                          prior=study.second.name if study.second_is_prior else None, warnings=warnings)
        with timer("encode"):
            self._encode(study)
        runs = {"classify": self._classify, "report": self._report, "detect": self._detect,
                "segment": self._segment, "vqa": self._vqa}
        for task in tasks:
            with timer(task):
                try:
                    runs[task](study, reading, qs, prior_days)
                except ValueError as e:  # e.g. a prompt the model refuses; the other tasks still run
                    log.debug("%s failed on %s", task, reading.image, exc_info=True)
                    reading.warnings.append(f"{task}: failed: {e}")
        timer.ms["total"] = round((time.perf_counter() - start) * 1000.0, 1)
        reading.timing_ms = timer.ms
        return reading.to_json(), study.frontal.pixels

    # ------------------------------------------------------------------------------------------------ inputs
    def _load(self, images: Any, prior: Any, prior_days: float | None, tasks: Sequence[str],
              qs: Sequence[Question]) -> tuple[_Study, list[str]]:
        _check_days(prior_days)
        frontal, lateral = frontal_and_lateral(load_study(images))
        warnings: list[str] = []
        if prior is None:
            return _Study(frontal, lateral, False, use_pair=lateral is not None and "report" in tasks), warnings
        prior_frontal, _ = frontal_and_lateral(load_study(prior))
        if lateral is not None:
            warnings.append("the lateral view was not used: the model takes a frontal view with either a lateral "
                            "view or a prior study, and a prior was given")
        if "report" in tasks and prior_days is None:
            warnings.append("report: the prior was not compared (its interval is unknown; give prior_days)")
        compare = ("report" in tasks and prior_days is not None) or ("vqa" in tasks and any(q.needs_prior for q in qs))
        return _Study(frontal, prior_frontal, True, use_pair=compare), warnings

    def _pixels(self, view: View) -> np.ndarray:
        """A view as the model was trained to see it: resized to its square input, kept at 8-bit levels."""
        size = int(self.model.config.image_size)
        small = resize_to(view.pixels, (size, size))
        return (np.round(np.clip(small, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)

    def _encode(self, study: _Study) -> None:
        """Encode [frontal] or [frontal, second] once; the single-view features are the first view's slot."""
        if study.second is None or not study.use_pair:
            study.single = self.model.encode_images([self._pixels(study.frontal)])
            return
        study.pair = self.model.encode_images([self._pixels(study.frontal), self._pixels(study.second)])
        n = getattr(self.model, "tokens_per_image", None)
        tokens, mask = getattr(study.pair, "tokens", None), getattr(study.pair, "mask", None)
        if isinstance(n, int) and tokens is not None and mask is not None:
            # views are encoded independently, each with its slot's embedding: slot 0 is the single-view input
            study.single = type(study.pair)(tokens[:, :n], mask[:, :n])
        else:
            study.single = self.model.encode_images([self._pixels(study.frontal)])

    # ------------------------------------------------------------------------------------------------ tasks
    def _classify(self, study: _Study, reading: Reading, qs: Any, prior_days: Any) -> None:
        cands = classify.answer_set("tuberculosis")
        probs = self._score(study.single, classify.prompt("tuberculosis"), cands)
        p = float(probs[cands.index("tuberculosis")])
        reading.tb = TBResult(round(p, 6), "tuberculosis" if p >= self.threshold else "normal", self.threshold,
                              self.threshold_source)
        cands = classify.answer_set("finding")
        probs = self._score(study.single, classify.prompt("finding"), cands)
        found = sorted(zip(cands, probs), key=lambda cp: -cp[1])
        reading.findings = [Finding(c, round(float(q), 6)) for c, q in found]

    def _report(self, study: _Study, reading: Reading, qs: Any, prior_days: float | None) -> None:
        feats, prefix = study.single, report.prompt("report")
        if study.second is not None and not study.second_is_prior:
            feats, prefix = study.pair, report.prompt("report", lateral=True)
        elif study.second_is_prior and prior_days is not None:
            feats, prefix = study.pair, report.prompt("report", prior_interval_days=float(prior_days))
        text, _ = self._generate(feats, prefix, MAX_TOKENS["report"], report.ANSWER_SHAPE)
        pred = report.parse(text)
        if pred.valid:
            reading.report = pred.text
        else:
            reading.warnings.append(_warning("report", pred.reason, text))

    def _detect(self, study: _Study, reading: Reading, qs: Any, prior_days: Any) -> None:
        budget = MAX_TOKENS["detect_object"] * len(self.detect_labels) + 8
        text, token_scores = self._generate(study.single, detect.prompt(self.detect_labels), budget,
                                            detect.ANSWER_SHAPE)
        h, w = study.frontal.size
        pred = detect.parse(text, (h, w), labels=self.detect_labels)
        if not pred.valid:
            reading.warnings.append(_warning("detect", pred.reason, text))
        got = sc.object_scores(text, token_scores, [sc.box_tokens(b) for _, b in pred.boxes])
        if got is None and pred.boxes:
            reading.warnings.append("detect: box scores are whole-answer confidences (tokens and text disagree)")
            got = [sc.answer_probability(token_scores)] * len(pred.boxes)
        reading.detections = [Detection(label, _to_pixels(box, h, w), round(s, 6))
                              for (label, box), s in zip(pred.boxes, got or [])]

    def _segment(self, study: _Study, reading: Reading, qs: Any, prior_days: Any) -> None:
        budget = MAX_TOKENS["segment_object"] * len(self.segment_labels) + 8
        text, token_scores = self._generate(study.single, segment.prompt(self.segment_labels), budget,
                                            segment.ANSWER_SHAPE)
        h, w = study.frontal.size
        pred = segment.parse(text, (h, w), labels=self.segment_labels)
        if not pred.valid:
            reading.warnings.append(_warning("segment", pred.reason, text))
        kept = [(label, box, mask, codes) for (label, box, mask), codes in zip(pred.masks, pred.extra.get("codes", []))
                if mask is not None and mask.shape == (h, w) and mask.any()]
        if len(kept) < len(pred.masks):
            reading.warnings.append(f"segment: {len(pred.masks) - len(kept)} object(s) with an empty mask dropped")
        got = sc.object_scores(text, token_scores, [sc.mask_tokens(b, c) for _, b, _, c in kept])
        if got is None and kept:
            reading.warnings.append("segment: mask scores are whole-answer confidences (tokens and text disagree)")
            got = [sc.answer_probability(token_scores)] * len(kept)
        if self.refine_masks and kept:
            try:
                kept = refine_objects(study.frontal.pixels, kept)
            except (ValueError, OSError, RuntimeError) as e:
                reading.warnings.append(f"segment: masks not refined ({e}); they are the decoded masks")
        reading.segmentations = [Segmentation(label, _to_pixels(box, h, w), rle_encode(mask), round(s, 6))
                                 for (label, box, mask, _), s in zip(kept, got or [])]

    def _vqa(self, study: _Study, reading: Reading, qs: Sequence[Question], prior_days: Any) -> None:
        for q in qs:
            feats = study.single
            if q.needs_prior:
                if not study.second_is_prior:
                    reading.warnings.append(f"vqa: {q.text!r} compares with a prior study, but none was given")
                    reading.answers.append(Answer(q.text, "", None, q.closed))
                    continue
                feats = study.pair
            reading.answers.append(self._answer(q, feats, reading))

    def _answer(self, q: Question, feats: Any, reading: Reading) -> Answer:
        if q.closed:
            probs = self._score(feats, vqa.prompt(q.text), q.candidates)
            best = int(np.argmax(probs))
            return Answer(q.text, q.candidates[best], round(float(probs[best]), 6), True)
        text, token_scores = self._generate(feats, vqa.prompt(q.text), MAX_TOKENS["vqa"], vqa.ANSWER_SHAPE)
        pred = vqa.parse(text)
        if not pred.valid:
            reading.warnings.append(_warning(f"vqa {q.text!r}", pred.reason, text))
            return Answer(q.text, "", None, False)
        return Answer(q.text, text.strip(), round(sc.answer_probability(token_scores), 6), False)

    # ------------------------------------------------------------------------------------------------ model calls
    def _score(self, feats: Any, prefix: str, candidates: Sequence[str]) -> list[float]:
        probs = self.model.score_candidates(images=None, prefix=prefix, candidates=list(candidates),
                                            image_features=feats)
        return [float(p) for p in probs]

    def _generate(self, feats: Any, prefix: str, budget: int,
                  shape: AnswerShape) -> tuple[str, list[tuple[str, float]]]:
        """Greedy answer, kept to the task's answer shape, and its (token, probability) list; the budget is cut to
        what the context has room for."""
        limit = getattr(self.model.config, "max_text_len", None)
        if isinstance(limit, int):
            budget = max(1, min(budget, limit - len(self.model.tokenizer.encode(prefix)) - 2))
        texts, token_scores = self.model.generate(images=None, prefixes=[prefix], image_features=feats,
                                                  max_new_tokens=budget, return_scores=True, answer_shapes=[shape])
        return texts[0], list(token_scores[0])


def parse_tasks(tasks: Sequence[str] | str) -> list[str]:
    items = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else [str(t).strip() for t in tasks]
    items = [t for t in items if t]
    unknown = [t for t in items if t not in TASKS]
    if unknown or not items:
        raise ValueError(f"unknown or no task(s) {unknown or items}; valid tasks: {', '.join(TASKS)}")
    return list(dict.fromkeys(items))


def _check_days(days: Any) -> None:
    try:
        ok = days is None or (not isinstance(days, bool) and np.isfinite(float(days)))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"prior_days must be a finite number of days, got {days!r}")


def _to_pixels(box: Sequence[float], h: int, w: int) -> list[float]:
    """Normalised (x1, y1, x2, y2) -> pixels of the input image (the model saw it resized without keeping the
    aspect, so x scales with the width and y with the height)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1 * w, 2), round(y1 * h, 2), round(x2 * w, 2), round(y2 * h, 2)]


def _warning(task: str, reason: str, text: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"{task}: {reason or 'malformed output'} (output: {shown!r})"


def load(name_or_path: str | os.PathLike = "cxrvlm-tiny", **kwargs: Any) -> Interpreter:
    """An Interpreter over `load_model(name_or_path)`; the model's folder is read for its TB operating point.
    Keyword arguments go to `Interpreter` (threshold, detect_labels, segment_labels, refine_masks)."""
    from cxrvlm.models import load_model

    model = load_model(name_or_path)
    return Interpreter(model, name=str(name_or_path), model_dir=_checkpoint_folder(name_or_path), **kwargs)


def _checkpoint_folder(name_or_path: str | os.PathLike) -> Path | None:
    """The folder `load_model` reads for this name or path (None when it cannot be told)."""
    from cxrvlm.models import registry

    try:
        return registry.checkpoint_folder(name_or_path)
    except ValueError:
        return None
