"""Evaluate a model on curated examples: batched generation, candidate scoring, each task's `parse`, each task's
metric, and one JSON record per example.

    result = evaluate(model, examples, EvalOptions(batch_size=8, threshold=0.42))
    result.tasks["classify"].metrics["tb_auroc"], result.records[0]["generated"]

Conventions (stated because they change the numbers):
- Close-ended classification and VQA are answered by candidate likelihood (`candidate_mode="score"`, default):
  the answer is the most likely candidate, or for binary TB screening "tuberculosis" when its probability reaches
  the operating point `threshold`. The free generation is still run and parsed; a malformed one is counted in
  `n_invalid` but does not change the scored answer. `candidate_mode="generate"` scores the parsed generation
  instead (PaliGemma-CXR's way) and keeps the probabilities for AUROC.
- `n_invalid` of every task counts generated texts its parser rejects, grouped by reason in `invalid_reasons`;
  they reach the metric as invalid predictions (scored as wrong) except for scored candidates (above).
- findings_then_report step 2 is asked with the model's own step-1 answer in its prompt (`chain=True`, the chain
  of thought as deployed), not the reference answer the training prompt holds. A model with a label head states
  step 1 from its head (`Task.text_from_head`, TB at the operating point `threshold`) instead of generating it.
- A model with a label head has its generated reports checked against the head's calls (`Task.check_with_head`): one
  that contradicts them, or copies a run of words `copy_guard` holds (patient-specific training text), is replaced
  by a report templated from them, as `cxrvlm interpret` gives it; the metrics count the replacements
  (`head_contradicted` of `head_checked`, `head_contradiction_rate`), each record lists what was wrong
  (`contradictions`) and keeps what the model said (`generated_before_check`).
- `perturb=(zoom, dx, dy)` evaluates on every image zoomed about its centre and shifted by (dx, dy) of its side
  (`data.images.zoom_shift`): how much a reading depends on the framing of the film. Only for tasks whose answers
  hold no coordinates; the TB operating point stays the one chosen on unperturbed images, as deployed.
- Examples whose images cannot be read, or that the model refuses (e.g. more views than image slots), are skipped,
  counted in `n_skipped` with the reason, and the run goes on.
- Every task's metric is also computed per source (`TaskResult.by_source`, keys from `by_source.source_key`) over
  the same predictions: the TB test per source at the one operating point of the whole split.
- The TB question is also asked of every film with another disease and no TB (`other_disease`): the share read as
  TB at the operating point is `EvalResult.other_disease`, each film's record in `other_disease_records` (target
  kind "other_disease"); they feed no task metric and are not among `records` (one per evaluated example).
"""
from __future__ import annotations

import dataclasses
import logging
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cxrvlm.data.images import ImageCache, zoom_shift
from cxrvlm.eval import other_disease, predict
from cxrvlm.eval.by_source import MetricsBySource, example_source
from cxrvlm.examples import Example, Prediction
from cxrvlm.io.read import read_image
from cxrvlm.jsonl import clean
from cxrvlm.metrics.memorisation import CopyGuard
from cxrvlm.tasks import Task, get_task, screening_task
from cxrvlm.tokens.rle import rle_encode
from cxrvlm.tokens.seg_refine import refine_objects

log = logging.getLogger(__name__)

CANDIDATE_MODES = ("score", "generate")


@dataclass
class EvalOptions:
    batch_size: int = 8
    max_new_tokens: int | None = None  # None: each task's own budget (`Task.max_new_tokens`)
    threshold: float | None = None  # TB operating point: probability of "tuberculosis" called positive
    candidate_mode: str = "score"
    chain: bool = True
    progress: bool = True
    fast_metrics: bool = False  # no pycocoevalcap (Java METEOR/PTB) and 200 bootstrap resamples: quick runs, tests
    perturb: tuple[float, float, float] | None = None  # (zoom, dx, dy) applied to every image: a robustness check
    refine_masks: bool = True  # segmentation masks redrawn on the film by the mask refiner (tokens.seg_refine)
    copy_guard: CopyGuard | None = None  # the training text's patient-specific runs: a report copying one is replaced

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if self.candidate_mode not in CANDIDATE_MODES:
            raise ValueError(f"candidate mode must be one of {CANDIDATE_MODES}, got {self.candidate_mode!r}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {self.threshold}")
        if self.perturb is not None:
            zoom, dx, dy = self.perturb
            if not (0.5 <= zoom <= 2.0 and abs(dx) <= 0.25 and abs(dy) <= 0.25):
                raise ValueError(f"perturb needs zoom in [0.5, 2] and shifts within ±0.25, got {self.perturb}")


@dataclass
class TaskResult:
    """One task's outcome: counts, malformed-output reasons, seconds spent and the metric's values."""

    n: int = 0
    n_invalid: int = 0
    n_skipped: int = 0
    invalid_reasons: Counter = field(default_factory=Counter)
    skipped_reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    n_checked: int = 0  # generated texts checked against the label head (`Task.check_with_head`)
    n_contradicted: int = 0  # of those, the ones that contradicted it (and were replaced)
    metrics: dict[str, Any] = field(default_factory=dict)
    by_source: dict[str, dict[str, Any]] = field(default_factory=dict)  # source -> {"n", "metrics"}

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "n_invalid": self.n_invalid, "invalid_rate": self.n_invalid / self.n if self.n else None,
                "invalid_reasons": dict(self.invalid_reasons.most_common()), "n_skipped": self.n_skipped,
                "skipped_reasons": dict(self.skipped_reasons.most_common()), "seconds": round(self.seconds, 3),
                "metrics": clean(self.metrics), "by_source": clean(self.by_source)}


@dataclass
class EvalResult:
    tasks: dict[str, TaskResult]
    records: list[dict[str, Any]]
    options: EvalOptions
    other_disease: dict[str, Any] | None = None  # films with another disease and no TB read as TB (None: no case)
    other_disease_records: list[dict[str, Any]] = field(default_factory=list)


def reason_kind(reason: str) -> str:
    """A parser's reason with the specifics taken out, so reasons group: "answer 'xyz' is not one of the
    candidates" -> "answer … is not one of the candidates"; numbers -> N."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]", "…", str(reason))
    return re.sub(r"\d+(\.\d+)?", "N", text).strip() or "unknown"


def select(examples: Sequence[Example], tasks: Sequence[str] | None = None, limit: int | None = None,
           seed: int = 0) -> list[Example]:
    """Examples of `tasks` (all when None); with `limit`, a seeded random `limit` of each task, in file order (a
    curated file lists sources one after another, so its first N would be one source)."""
    if tasks is not None:
        for t in tasks:
            get_task(t)  # ValueError listing the valid names
    chosen = [e for e in examples if tasks is None or e.task in tasks]
    if limit is None:
        return chosen
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    # sampling unit: one example, except those a task keeps together (a chain's steps: step 2 is asked with the
    # model's own step-1 answer)
    units: dict[str, dict[tuple, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, e in enumerate(chosen):
        together = get_task(e.task).keep_together
        units[e.task][together(e) if together else (i,)].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for task in sorted(units):
        groups = list(units[task].values())
        rng.shuffle(groups)
        taken = 0
        for g in groups:
            if taken >= limit:
                break
            keep.update(g)
            taken += len(g)
    return [e for i, e in enumerate(chosen) if i in keep]


def parse_output(task: Task, text: str, example: Example) -> Prediction:
    """`task.parse` with what the example's target tells it: the image size (H, W) for masks, the prompt's
    candidates / labels, the chain step. A parser that raises (it should not) gives an invalid prediction."""
    size = example.target.get("size")
    image_size = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) and len(size) == 2 else None
    try:
        return task.parse(text, image_size, **task.hints(example.target))
    except Exception as e:  # noqa: BLE001 - a parser bug must cost one example, not a long evaluation
        log.warning("%s.parse raised on %r: %s", task.name, text[:80], e)
        return Prediction(task.name, valid=False, reason=f"parser error: {type(e).__name__}", text=text)


def scored_prediction(parsed: Prediction, probs: dict[str, float], example: Example,
                      options: EvalOptions) -> Prediction:
    """The prediction a candidate task's metric sees: the likelihood answer (mode "score") or the parsed
    generation (mode "generate"), with `extra["probs"]` either way."""
    extra = {**parsed.extra, "probs": probs, "generated_valid": parsed.valid, "generated_reason": parsed.reason,
             "generated_answer": parsed.answer if parsed.answer is not None else parsed.label}
    if options.candidate_mode == "generate":
        return Prediction(parsed.task, valid=parsed.valid, reason=parsed.reason, text=parsed.text,
                          label=parsed.label, answer=parsed.answer, extra=extra)
    label = max(probs, key=probs.get)
    task = get_task(example.task)
    if task.screening_case(example) and task.screening[1] in probs and len(probs) == 2:
        label = task.screening_answer(probs, options.threshold)
    return Prediction(parsed.task, text=parsed.text, label=label, answer=label, extra=extra)


def predict_one(task: Task, example: Example, text: str, token_scores: list, probs: dict[str, float] | None,
                options: EvalOptions) -> tuple[Prediction, Prediction]:
    """(parsed generation, prediction for the metric)."""
    if task.by_head:  # the head's outputs are the prediction; there is no text to parse
        head = Prediction(task.name, valid=probs is not None, reason="" if probs else "the model has no label head",
                          extra={"probs": probs or {}})
        return head, head
    parsed = parse_output(task, text, example)
    if parsed.boxes and task.coordinates:
        parsed.extra["box_scores"] = predict.box_scores_for(parsed.boxes, token_scores)
    if parsed.masks and options.refine_masks:
        parsed = refined(parsed, example)
    final = scored_prediction(parsed, probs, example, options) if probs is not None else parsed
    return parsed, final


def refined(parsed: Prediction, example: Example) -> Prediction:
    """A segmentation with its masks redrawn on the example's film by the mask refiner (boxes follow the masks);
    unchanged, with a warning, when the film or the refiner fails."""
    try:
        objects = refine_objects(read_image(example.images[0]).pixels, parsed.masks)
    except (ValueError, OSError, RuntimeError) as e:
        log.warning("%s: masks not refined: %s", example.study_id, e)
        return parsed
    return dataclasses.replace(parsed, masks=objects, boxes=[(lab, box) for lab, box, _ in objects])


def prediction_json(pred: Prediction) -> dict[str, Any]:
    """A prediction's fields for predictions.jsonl; masks as COCO RLE."""
    masks = []
    for label, box, mask in pred.masks:
        rle = rle_encode(np.asarray(mask, dtype=bool)) if mask is not None and np.ndim(mask) == 2 else None
        masks.append({"label": label, "box": [float(v) for v in box], "rle": rle})
    extra = {k: v for k, v in pred.extra.items() if k in ("probs", "box_scores", "generated_answer", "step")}
    return clean({"label": pred.label, "answer": pred.answer, "labels": list(pred.labels),
                     "boxes": [{"label": lab, "box": list(b)} for lab, b in pred.boxes], "masks": masks, **extra})


def evaluate(model: Any, examples: Sequence[Example], options: EvalOptions | None = None) -> EvalResult:
    """Run `model` over `examples` task by task (batched), feed each task's metric; see the module docstring."""
    options = options or EvalOptions()
    by_task: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        by_task[e.task].append(e)
    for task in [t for t in by_task if get_task(t).by_head and not getattr(model, "label_names", None)]:
        log.info("%s: left out, the model has no label head", task)
        del by_task[task]
    cache: Any = ImageCache(int(model.config.image_size))
    if options.perturb is not None:
        moved = [t for t in by_task if get_task(t).coordinates]
        if moved:
            raise ValueError(f"perturb: the answers of {', '.join(sorted(moved))} hold coordinates that the "
                             f"perturbation would move; evaluate them without it (--tasks)")
        cache = _PerturbedViews(cache, options.perturb)
    bar = tqdm(total=len(examples), desc="eval", unit="ex", file=sys.stderr, disable=not options.progress,
               dynamic_ncols=True)
    results, records = {}, []
    try:
        for task in sorted(by_task):
            results[task], recs = _evaluate_task(model, task, by_task[task], options, cache, bar)
            records.extend(recs)
    finally:
        bar.close()
    return _with_other_disease(EvalResult(results, records, options), model, examples, cache)


def _with_other_disease(result: EvalResult, model: Any, examples: Sequence[Example], cache: Any) -> EvalResult:
    """`result` with the films of another disease and no TB asked the TB question (unchanged when none is)."""
    found = other_disease.cases(examples)
    if not found:
        return result
    rows = other_disease.score_cases(model, found, result.options.batch_size, cache)
    threshold = result.options.threshold
    result.other_disease = other_disease.summary(rows, threshold)
    result.other_disease_records = [_other_disease_record(ex, probs, threshold) for ex, probs in rows]
    return result


def _other_disease_record(ex: Example, probs: dict[str, float], threshold: float | None) -> dict[str, Any]:
    answer = screening_task().screening_answer(probs, threshold)
    return {**_ids(ex), "prefix": ex.prefix, "prediction": clean({"label": answer, "answer": answer, "probs": probs}),
            "target": ex.target, "meta": ex.meta}


class _PerturbedViews:
    """An image cache whose views come zoomed and shifted (`EvalOptions.perturb`)."""

    def __init__(self, cache: Any, perturb: tuple[float, float, float]) -> None:
        self.cache, self.perturb = cache, perturb

    def views(self, example: Example) -> list[np.ndarray]:
        return [zoom_shift(v, *self.perturb) for v in self.cache.views(example)]


class _Chain:
    """A chained task (`Task.chain_prompt`): the prompt its next step is asked with, made from the model's own
    answer to the step before, per unit of examples kept together."""

    def __init__(self, task: Task, enabled: bool) -> None:
        self.task, self.answers = task, {}
        self.enabled = enabled and task.chain_prompt is not None and task.keep_together is not None

    def prefix(self, e: Example) -> str:
        return self.answers.get(self.task.keep_together(e), e.prefix) if self.enabled else e.prefix

    def remember(self, e: Example, text: str) -> None:
        follow_up = self.task.chain_prompt(e, text) if self.enabled else None
        if follow_up is not None:
            self.answers[self.task.keep_together(e)] = follow_up


def _evaluate_task(model: Any, task: str, examples: list[Example], options: EvalOptions, cache: Any,
                   bar: Any) -> tuple[TaskResult, list[dict[str, Any]]]:
    spec = get_task(task)
    metric = spec.metric(threshold=options.threshold, fast=options.fast_metrics)
    per_source = MetricsBySource(lambda: spec.metric(threshold=options.threshold, fast=options.fast_metrics))
    result, records = TaskResult(), []
    chain = _Chain(spec, options.chain)
    max_new = options.max_new_tokens or spec.max_new_tokens
    t0 = time.perf_counter()
    for chunk in _batches(examples, options.batch_size):
        for ex, prefix, out, skip in _run_chunk(model, chunk, chain, cache, max_new, options):
            if skip:
                result.n_skipped += 1
                result.skipped_reasons[reason_kind(skip)] += 1
                records.append({**_ids(ex), "prefix": prefix, "skipped": skip, "target": ex.target})
                continue
            text, token_scores, probs, contradicted, replaced = out
            chain.remember(ex, text)
            records.append(_score(spec, (metric, per_source), ex, prefix, text, token_scores, probs, options,
                                  result))
            if contradicted is not None:
                records[-1]["contradictions"] = contradicted
                if replaced is not None:  # what the model said, for the memorisation of the model itself
                    records[-1]["generated_before_check"] = replaced
                result.n_checked += 1
                result.n_contradicted += bool(contradicted)
        bar.update(len(chunk))
    result.metrics = _compute(metric, task)
    if result.n_checked:  # generated texts that contradicted the label head (each was replaced)
        result.metrics.update({"head_checked": result.n_checked, "head_contradicted": result.n_contradicted,
                               "head_contradiction_rate": result.n_contradicted / result.n_checked})
    result.by_source = per_source.compute(lambda m, source: _compute(m, f"{task} ({source})"), result.metrics)
    result.seconds = time.perf_counter() - t0
    log.info("%s: %d examples, %d malformed, %d skipped, %.1fs", task, result.n, result.n_invalid,
             result.n_skipped, result.seconds)
    return result, records


def _batches(examples: list[Example], size: int) -> list[list[Example]]:
    """Batches of at most `size`, every step-1 example in a batch before any step-2 one (step 2's prompt holds the
    model's step-1 answer, so it must be generated first); file order otherwise."""
    steps = sorted({e.target.get("step") or 0 for e in examples})
    out = []
    for step in steps:
        mine = [e for e in examples if (e.target.get("step") or 0) == step]
        out += [mine[i:i + size] for i in range(0, len(mine), size)]
    return out


def _run_chunk(model: Any, chunk: list[Example], chain: _Chain, cache: Any, max_new: int,
               options: EvalOptions) -> list[tuple]:
    """[(example, prefix, (text, token_scores, probs, problems, replaced text) or None, skip reason or "")] for a
    batch; a batch the model refuses is retried one example at a time so only the offending example is skipped."""
    rows, ok = [], []
    for ex in chunk:
        prefix = chain.prefix(ex)
        try:
            ok.append((ex, prefix, cache.views(ex)))
        except (ValueError, OSError) as e:
            rows.append((ex, prefix, None, f"image unreadable: {e}"))
    groups = [ok] if ok else []
    while groups:
        group = groups.pop(0)
        try:
            out = predict.run_batch(model, [g[0] for g in group], [g[2] for g in group], [g[1] for g in group],
                                    max_new, threshold=options.threshold, copy_guard=options.copy_guard)
        except (ValueError, RuntimeError) as e:
            if len(group) > 1:
                groups = [[g] for g in group] + groups
                continue
            rows.append((group[0][0], group[0][1], None, f"model error: {e}"))
            continue
        for i, (ex, prefix, _) in enumerate(group):
            rows.append((ex, prefix, (out.texts[i], out.token_scores[i], out.probs[i], out.contradictions[i],
                                      out.replaced[i]), ""))
    return rows


def _ids(ex: Example) -> dict[str, Any]:
    return {"task": ex.task, "study_id": ex.study_id, "patient_id": ex.patient_id, "source": ex.source,
            "source_key": example_source(ex), "images": list(ex.images)}


def _score(task: Task, metrics: tuple[Any, MetricsBySource], ex: Example, prefix: str, text: str,
           token_scores: list, probs: dict[str, float] | None, options: EvalOptions,
           result: TaskResult) -> dict[str, Any]:
    """The example's record; its prediction fed to the task's metric, then to its source's (metrics)."""
    parsed, final = predict_one(task, ex, text, token_scores, probs, options)
    record = {**_ids(ex), "prefix": prefix, "generated": text, "valid": parsed.valid, "reason": parsed.reason,
              "prediction": prediction_json(final), "target": ex.target, "meta": ex.meta}
    try:
        metrics[0].update(final, ex.target)
    except ValueError as e:  # a target the metric cannot read is a data problem: skip the example, say why
        result.n_skipped += 1
        result.skipped_reasons[reason_kind(f"bad target: {e}")] += 1
        record["skipped"] = f"bad target: {e}"
        return record
    metrics[1].update(ex, final)
    result.n += 1
    if not parsed.valid:
        result.n_invalid += 1
        result.invalid_reasons[reason_kind(parsed.reason)] += 1
    return record


def _compute(metric: Any, task: str) -> dict[str, Any]:
    try:
        return dict(metric.compute())
    except Exception as e:  # noqa: BLE001 - e.g. Java missing for METEOR: keep every other task's numbers
        log.error("%s: metric failed: %s", task, e)
        return {"error": f"{type(e).__name__}: {e}"}
