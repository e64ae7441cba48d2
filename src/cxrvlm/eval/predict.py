"""The model side of evaluation: one batch of examples -> generated texts, per-token probabilities and, for
close-ended questions, the normalised likelihood of each candidate answer.

The views of a batch are encoded once (`model.encode_images`) and the features are shared by generation and by
candidate scoring. Only the documented model interface is used (`encode_images`, `generate(...,
return_scores=True, image_features=...)`, `score_candidates(..., image_features=...)`), so every backend works.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrvlm.examples import Example
from cxrvlm.metrics.memorisation import CopyGuard
from cxrvlm.tasks import get_task
from cxrvlm.tokens.loc import quantise

log = logging.getLogger(__name__)

_LOC_PREFIX = "<loc"


@dataclass
class BatchOutput:
    """What the model said for each example of a batch (lists aligned with the batch)."""

    texts: list[str]
    token_scores: list[list[tuple[str, float]]]
    probs: list[dict[str, float] | None] = field(default_factory=list)
    # per example, what was wrong with its generated text (`Task.check_with_head`: a call of the label head it
    # contradicted, a copied run; the text is then the task's replacement); None when it was not checked
    contradictions: list[list[str] | None] = field(default_factory=list)
    replaced: list[str | None] = field(default_factory=list)  # the generated text a replacement stands for


def candidates_of(example: Example) -> list[str]:
    """The candidate answers of a close-ended example, scored by likelihood so AUROC is computable ([] when its
    task generates the answer: `Task.candidates`)."""
    task = get_task(example.task)
    return task.candidates(example) if task.candidates else []


def _one(features: Any, i: int) -> Any | None:
    """Example i's image features (batch of 1), or None when the backend's feature type cannot be sliced here."""
    if dataclasses.is_dataclass(features) and hasattr(features, "tokens") and hasattr(features, "mask"):
        return dataclasses.replace(features, tokens=features.tokens[i:i + 1], mask=features.mask[i:i + 1])
    return None


def score_one(model: Any, views: list[np.ndarray], features: Any, prefix: str,
              candidates: Sequence[str]) -> dict[str, float]:
    """candidate -> probability (sums to 1) for one example, from its sliced features or its views."""
    if features is not None:
        probs = model.score_candidates(prefix=prefix, candidates=list(candidates), image_features=features)
    else:
        probs = model.score_candidates(views, prefix, list(candidates))
    out = {c: float(p) for c, p in zip(candidates, probs)}
    if len(out) != len(candidates) or not all(math.isfinite(p) for p in out.values()):
        raise ValueError(f"score_candidates returned {probs!r} for candidates {list(candidates)}")
    return out


def run_batch(model: Any, examples: Sequence[Example], views: Sequence[list[np.ndarray]], prefixes: Sequence[str],
              max_new_tokens: int, score: bool = True, generate: bool = True,
              threshold: float | None = None, copy_guard: CopyGuard | None = None) -> BatchOutput:
    """Encode the batch's views once, generate an answer to each prefix (greedy, kept to its task's answer shape),
    score the candidates of the close-ended examples, or take them from the label head where the model has one and
    the task reads it (`Task.from_head`; an answer the task states from the head, `Task.text_from_head`, with TB
    called at the operating point `threshold`, replaces the generation, and a generation the task checks against
    the head, `Task.check_with_head`, is replaced when it contradicts it or copies a run `copy_guard` holds).
    views: per example, its (H, W) float arrays in [0, 1]."""
    features = model.encode_images([list(v) for v in views])
    heads = model.label_probs(image_features=features) if getattr(model, "label_names", None) else None
    stated = [_stated(ex, heads[i], threshold) if heads else None for i, ex in enumerate(examples)]
    texts: list[str] = [s or "" for s in stated]
    token_scores: list[list[tuple[str, float]]] = [[] for _ in examples]
    generate = generate and not all(get_task(ex.task).by_head or s is not None for ex, s in zip(examples, stated))
    if generate:
        said, scores = model.generate(prefixes=list(prefixes), max_new_tokens=max_new_tokens,
                                      return_scores=True, image_features=features,
                                      answer_shapes=[get_task(ex.task).answer_shape for ex in examples])
        texts = [s if s is not None else t for s, t in zip(stated, said)]
        token_scores = [[] if s is not None else list(ts) for s, ts in zip(stated, scores)]
    checked: list[list[str] | None] = [None] * len(examples)
    replaced: list[str | None] = [None] * len(examples)
    for i, ex in enumerate(examples):
        check = get_task(ex.task).check_with_head
        if heads and check and generate and stated[i] is None:
            given, checked[i] = check(texts[i], heads[i], threshold, bool(ex.meta.get("prior_study_id")), copy_guard)
            replaced[i], texts[i] = (texts[i] if checked[i] else None), given
    probs: list[dict[str, float] | None] = []
    for i, (ex, prefix) in enumerate(zip(examples, prefixes)):
        from_head = get_task(ex.task).from_head
        answer = from_head(ex, heads[i], threshold) if heads and from_head else None
        if answer is not None:
            probs.append(answer)
            continue
        cands = candidates_of(ex) if score else []
        probs.append(score_one(model, views[i], _one(features, i), prefix, cands) if cands else None)
    return BatchOutput(texts, token_scores, probs, checked, replaced)


def _stated(example: Example, head: dict[str, float], threshold: float | None) -> str | None:
    text_from_head = get_task(example.task).text_from_head
    return text_from_head(example, head, threshold) if text_from_head else None


def scored(model: Any, examples: Sequence[Example], batch_size: int, cache: Any,
           label: str = "scoring") -> Iterator[tuple[Example, dict[str, float] | None]]:
    """(example, candidate probabilities) of each example, `batch_size` at a time, nothing generated (`cache`
    gives each example's views); an example whose images cannot be read is skipped with a warning naming
    `label`."""
    for start in range(0, len(examples), batch_size):
        chunk, views = [], []
        for ex in examples[start:start + batch_size]:
            try:
                views.append(cache.views(ex))
                chunk.append(ex)
            except (ValueError, OSError) as e:
                log.warning("%s: skipping %s: %s", label, ex.study_id, e)
        if chunk:
            yield from zip(chunk, run_batch(model, chunk, views, [e.prefix for e in chunk], 1, generate=False).probs)


def loc_runs(token_scores: Sequence[tuple[str, float]]) -> list[tuple[tuple[int, ...], float]]:
    """Runs of four consecutive `<locNNNN>` tokens -> [(the four bins, geometric mean probability)], in order."""
    out: list[tuple[tuple[int, ...], float]] = []
    bins: list[int] = []
    logp: list[float] = []
    for token, p in token_scores:
        t = str(token).strip()
        if t.startswith(_LOC_PREFIX) and t.endswith(">") and t[4:-1].isdigit():
            bins.append(int(t[4:-1]))
            logp.append(math.log(max(float(p), 1e-12)))
            if len(bins) == 4:
                out.append((tuple(bins), math.exp(sum(logp) / 4)))
                bins, logp = [], []
        else:
            bins, logp = [], []
    return out


def box_scores_for(boxes: Sequence[tuple[str, Sequence[float]]],
                   token_scores: Sequence[tuple[str, float]]) -> list[float]:
    """One confidence per parsed box: the geometric mean probability of the four loc tokens that encode it.

    The parsed boxes are matched to the loc-token runs in order by their quantised coordinates (y1 x1 y2 x2), so a
    malformed fragment the parser skipped does not shift the scores. A box with no matching run gets 1.0."""
    runs = loc_runs(token_scores)
    out, start = [], 0
    for _, (x1, y1, x2, y2) in boxes:
        want = tuple(quantise(v) for v in (y1, x1, y2, x2))
        hit = next((k for k in range(start, len(runs)) if runs[k][0] == want), None)
        if hit is None:
            out.append(1.0)
            continue
        out.append(runs[hit][1])
        start = hit + 1
    return out
