"""What the tasks' `read` functions share: boxes in pixels of the input image, and the confidence of generated
objects and answers from the per-token probabilities `generate(return_scores=True)` gives.

A box's score is the geometric mean of the probabilities of its four `<loc>` tokens (each the mass within ±10
bins of the written one: `models.backend.LOC_TOLERANCE`); a mask's adds its sixteen `<seg>` tokens. Loc and seg tokens
are single tokens that decode verbatim, so the k-th `<loc..>`/`<seg..>` in the decoded text is the k-th such token
generated: each parsed object is found in the text (its exact token string, after the previous object) and takes
the probabilities of the special tokens it spans.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from cxrvlm.tasks._text import output_warning
from cxrvlm.tokens.loc import encode_box
from cxrvlm.tokens.seg import encode_seg

TokenScores = Sequence[tuple[str, float]]
_SPECIAL_RE = re.compile(r"<(?:loc\d{4}|seg\d{3})>")


def geometric_mean(probs: Sequence[float]) -> float:
    """exp(mean(log p)), with p floored at 1e-12; 0.0 for no probabilities."""
    if not probs:
        return 0.0
    return float(math.exp(sum(math.log(max(float(p), 1e-12)) for p in probs) / len(probs)))


def answer_probability(scores: TokenScores) -> float:
    """Mean per-token confidence of a generated answer (geometric mean of its tokens' probabilities)."""
    return geometric_mean([p for _, p in scores])


def object_scores(text: str, scores: TokenScores, objects: Sequence[str]) -> list[float] | None:
    """Scores of parsed objects, each given by its token string (`box_tokens` / `mask_tokens`), in text order.
    None when the text and the token scores disagree about the special tokens (e.g. a `<loc..>` spelled out of
    ordinary byte tokens), so the caller can fall back to a whole-answer score."""
    special = [p for tok, p in scores if _SPECIAL_RE.fullmatch(tok)]
    starts = [m.start() for m in _SPECIAL_RE.finditer(text)]
    if len(special) != len(starts):
        return None
    out, pos = [], 0
    for obj in objects:
        at = text.find(obj, pos)
        if at < 0:
            return None
        first = sum(1 for s in starts if s < at)
        n = len(_SPECIAL_RE.findall(obj))
        out.append(geometric_mean(special[first:first + n]))
        pos = at + len(obj)
    return out


def box_tokens(box: Sequence[float]) -> str:
    """Normalised (x1, y1, x2, y2) -> the four loc tokens a model wrote for it (decoding then re-encoding a loc
    bin gives the same bin, so this is the exact text)."""
    return encode_box(*box)


def mask_tokens(box: Sequence[float], codes: Sequence[int]) -> str:
    """Box + 16 valid seg codes (0..127) -> `<loc..>x4<seg..>x16` as written."""
    return encode_box(*box) + encode_seg(codes)


def generate_objects(ctx: Any, task: Any, prompt: str, labels: Sequence[str],
                     size: tuple[int, int] | None = None) -> tuple[str, TokenScores, Any]:
    """(text, token scores, parsed prediction) of an answer naming `labels`' objects (boxes, masks), parsed at `size`
    (H, W), by default the input image's size; a malformed answer adds a warning and keeps what could be parsed."""
    text, token_scores = ctx.generate(prompt, task.budget(len(labels)), task.answer_shape)
    pred = task.parse(text, size or ctx.image_size, labels=list(labels))
    if not pred.valid:
        ctx.warn(output_warning(task.name, pred.reason, text))
    return text, token_scores, pred


def object_confidences(ctx: Any, task: str, text: str, token_scores: TokenScores, objects: Sequence[str]) -> list[float]:
    """`object_scores`, or each object given the whole answer's confidence (with a warning on `ctx`) when the
    tokens and the text disagree."""
    got = object_scores(text, token_scores, objects)
    if got is None and objects:
        ctx.warn(f"{task}: scores are whole-answer confidences (tokens and text disagree)")
        got = [answer_probability(token_scores)] * len(objects)
    return got or []


def to_pixels(box: Sequence[float], h: int, w: int) -> list[float]:
    """Normalised (x1, y1, x2, y2) -> pixels of the input image (the model saw it resized without keeping the
    aspect, so x scales with the width and y with the height)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1 * w, 2), round(y1 * h, 2), round(x2 * w, 2), round(y2 * h, 2)]
