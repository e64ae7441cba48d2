"""Segmentation, PaliGemma format: prefix `segment right lung ; left lung`, suffix
`<loc..>x4<seg..>x16 right lung ; <loc..>x4<seg..>x16 left lung`.

Each object is its box (four loc tokens, y1 x1 y2 x2, `cxrvlm.tokens.loc`), then 16 `<segNNN>` codes of the mask
tokenizer (`cxrvlm.tokens.seg`: the mask cropped to the box, 64x64, a 4x4 grid of VQ-VAE codes), then the label
phrase; objects are joined by " ; " in the order of the prompt. The codes are made with the loc-quantised box, the
one a model's output gives back, so encoding and decoding see the same crop.

One example per view with masks. A both-lungs mask (`View.masks["lungs"]`) is split into its connected
components (`split_lungs`): "right lung" and "left lung" are the *patient's* sides (the patient's right lung is on
the image's left). From `rng`, a view asks for both lungs (1/2, in random order), one lung (1/4) or the whole
"lungs" mask as one object (1/4). Any other mask label gives one object per connected component (specks under 1%
of the mask's area dropped), left to right.

target keys: "labels" (prompt phrases, in order), "size" ([H, W] of the image), "masks" (list of {"label": phrase,
"box": [x1, y1, x2, y2] normalised tight box, "rle": COCO RLE of the object's mask at full size (`tokens.rle`),
"source_path": the mask file the object was cut from, or None, "part": "whole" / "right lung" / "left lung" / "component"}).

The tokenizer is the shipped one (`MaskTokenizer.default()`); `set_mask_tokenizer` swaps it (e.g. for PaliGemma's
`vae-oid.npz`, whose codes a fine-tuned PaliGemma speaks) for both `format` and `parse`.
"""
from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.segmentation import SegmentationMetric
from cxrvlm.records import Study, View, load_mask
from cxrvlm.tasks import _reading, _text
from cxrvlm.tasks.base import ReadContext, Task, register
from cxrvlm.tokens.loc import LOC_RE, decode_locs, encode_box
from cxrvlm.tokens.rle import rle_encode, rle_encode_resized
from cxrvlm.tokens.seg import MaskTokenizer, encode_seg, mask_box, split_lungs
from cxrvlm.tokens.seg_refine import refine_objects
from cxrvlm.tokens.shape import BOXES_AND_MASKS

log = logging.getLogger(__name__)
NAME = "segment"
SEPARATOR = " ; "
LUNG_SIDES = ("right lung", "left lung")
_MAX_SEGMENT_CHARS = 50_000  # ~800 objects; longer is a runaway generation
_TOKEN_RE = re.compile(r"<(?:loc\d{4}|seg\d+)>")
_tokenizer: MaskTokenizer | None = None


def set_mask_tokenizer(tok: MaskTokenizer | None) -> None:
    """Use `tok` for format and parse (None: back to the shipped tokenizer)."""
    global _tokenizer
    _tokenizer = tok


def mask_tokenizer() -> MaskTokenizer:
    return _tokenizer if _tokenizer is not None else MaskTokenizer.default()


def prompt(labels: Sequence[str]) -> str:
    """`segment a ; b` for the given labels (phrases or label names)."""
    phrases = [_text.phrase(x) for x in labels]
    if not phrases or any(not p for p in phrases):
        raise ValueError(f"segment.prompt: needs one or more non-empty labels, got {list(labels)}")
    return "segment " + SEPARATOR.join(phrases)


def encode_objects(masks: Sequence[np.ndarray],
                   tok: MaskTokenizer | None = None) -> list[tuple[tuple[float, ...], str]]:
    """Non-empty bool H x W masks -> [(normalised tight box, `<loc..>x4<seg..>x16`)], encoded in one batch.

    The codes are made with the box the loc tokens give back (within half a bin of the tight box)."""
    norms, locs, qboxes = [], [], []
    for m in masks:
        box = mask_box(m)
        if box is None:
            raise ValueError("segment.encode_objects: an empty mask has no box")
        h, w = m.shape
        norms.append((box[0] / w, box[1] / h, box[2] / w, box[3] / h))
        locs.append(encode_box(*norms[-1]))
        qx1, qy1, qx2, qy2 = decode_locs([int(t) for t in LOC_RE.findall(locs[-1])])
        qboxes.append((qx1 * w, qy1 * h, qx2 * w, qy2 * h))
    codes = (tok or mask_tokenizer()).encode_batch(list(masks), qboxes)
    if any(c is None for c in codes):
        raise ValueError("segment.encode_objects: a mask could not be encoded (see the log)")
    return [(n, loc + encode_seg(c)) for n, loc, c in zip(norms, locs, codes)]  # type: ignore[arg-type]


def _components(mask: np.ndarray, min_fraction: float = 0.01) -> list[np.ndarray]:
    lab, n = ndimage.label(mask)
    if n == 0:
        return []
    areas = np.bincount(lab.ravel())[1:]
    parts = [lab == i + 1 for i in range(n) if areas[i] >= min_fraction * areas.sum()]
    return sorted(parts, key=lambda m: mask_box(m)[:2])  # type: ignore[index]


def _objects(label: str, mask: np.ndarray, rng: random.Random) -> list[tuple[str, str, np.ndarray]]:
    """One mask of a view -> [(phrase, part, mask)] to ask for, in prompt order."""
    p = _text.phrase(label)
    if p not in ("lungs", "lung"):
        return [(p, "component", m) for m in _components(mask)]
    sides = split_lungs(mask)
    if not sides:
        return []
    draw = rng.random()
    if draw < 0.25 or len(sides) == 1 and draw < 0.5:
        return [("lungs", "whole", np.logical_or.reduce(list(sides.values())))]
    names = [s for s in LUNG_SIDES if s in sides]
    if draw < 0.5 and len(names) > 1:
        names = [rng.choice(names)]
    else:
        rng.shuffle(names)
    return [(s, s, sides[s]) for s in names]


def _view_example(study: Study, view: View, rng: random.Random) -> Example | None:
    objects: list[tuple[str, str, np.ndarray, Any]] = []
    for label, ref in view.masks.items():
        try:
            mask = load_mask(ref, view.size)
        except ValueError as e:
            log.warning("%s view %s: mask %r skipped: %s", study.study_id, view.image_id, label, e)
            continue
        objects += [(p, part, m, ref) for p, part, m in _objects(label, mask, rng)]
    if not objects:
        return None
    order, pieces, masks = [], [], []
    encoded = encode_objects([m for _, _, m, _ in objects])
    for (p, part, m, ref), (norm, tokens) in zip(objects, encoded):
        pieces.append(f"{tokens} {p}")
        order += [p] if p not in order else []
        masks.append({"label": p, "box": [float(v) for v in norm], "rle": rle_encode(m),
                      "source_path": str(ref) if isinstance(ref, str) or hasattr(ref, "__fspath__") else None,
                      "part": part})
    target = {"labels": order, "size": [int(s) for s in objects[0][2].shape], "masks": masks}
    return _text.make_example(NAME, study, [view], prompt(order), SEPARATOR.join(pieces), target)


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> one segmentation example per view with masks."""
    made = (_view_example(study, v, rng) for v in _text.usable_views(study) if v.masks)
    return [e for e in made if e is not None]


def _parse_object(fragment: str, allowed: set[str] | None) -> tuple[str, tuple[float, ...], list[int]] | str:
    """One fragment -> (phrase, normalised box, seg codes as written), or why it is malformed."""
    tail = fragment[fragment.rfind(">") + 1:] if ">" in fragment else fragment
    if " ".join(_TOKEN_RE.sub(" ", fragment).split()) != " ".join(tail.split()):
        return "text before or between the location/segmentation tokens"
    if "<" in tail:
        return "a broken token in the label"
    locs = [int(t) for t in LOC_RE.findall(fragment)]
    if len(locs) != 4:
        return f"{len(locs)} location tokens where 4 were expected"
    if re.search(r"<seg\d+>.*<loc\d{4}>", fragment):
        return "segmentation tokens before location tokens"
    label = _text.normalise(tail)
    if not label:
        return "object without a label"
    if allowed is not None and label not in allowed:
        return f"label {label[:40]!r} was not asked for"
    box = decode_locs(locs)
    if box[2] < box[0] or box[3] < box[1]:
        return "box corners inverted (y2 < y1 or x2 < x1)"
    codes = [int(c) for c in re.findall(r"<seg(\d+)>", fragment)]
    return label, box, codes


def parse(text: str, image_size: tuple[int, int] | None = None, labels: Sequence[str] | None = None,
          tokenizer: MaskTokenizer | None = None) -> Prediction:
    """Model text -> masks [(phrase, (x1, y1, x2, y2) normalised, bool H x W)] with `image_size` (H, W), else
    the mask is None (codes in `extra["codes"]`). Fragments without 4 loc tokens or a label (or with a label not
    in `labels`) are skipped into `extra["malformed"]`; an object whose codes or box cannot be decoded (not 16
    codes, a code over 127, a zero-area box) keeps an empty mask and its reason in `extra["decode_errors"]`.
    Either makes the prediction invalid; the good objects are kept. Never raises."""
    if not isinstance(text, str):
        return Prediction(NAME, valid=False, reason=f"output is a {type(text).__name__}, not text")
    if len(text) > _MAX_SEGMENT_CHARS:
        return Prediction(NAME, valid=False, reason=f"output is {len(text)} characters, a runaway generation")
    allowed = {_text.normalise(x) for x in labels} if labels is not None else None
    objects, malformed = [], []
    for fragment in text.split(";"):
        if fragment.strip():
            got = _parse_object(fragment, allowed)
            if isinstance(got, str):
                malformed.append({"text": fragment.strip()[:80], "reason": got})
            else:
                objects.append(got)
    masks, errors = _decode(objects, image_size, tokenizer)
    reasons = [f"{len(malformed)} malformed object(s): {malformed[0]['reason']}"] if malformed else []
    reasons += [f"{len(errors)} undecodable mask(s): {errors[0]['reason']}"] if errors else []
    if not objects:
        reasons.append("no object found" if text.strip() else "empty output")
    extra = {"malformed": malformed, "decode_errors": errors, "codes": [c for _, _, c in objects]}
    return Prediction(NAME, valid=not reasons, reason="; ".join(reasons), text=text,
                      labels=[lab for lab, _, _ in objects], boxes=[(lab, b) for lab, b, _ in objects],
                      masks=masks, extra=extra)


def _decode(objects: list, image_size: tuple[int, int] | None, tok: MaskTokenizer | None) -> tuple[list, list]:
    """Objects -> (masks, decode errors). A failure of the tokenizer itself becomes a reason too, not a raise."""
    if image_size is None:
        return [(lab, box, None) for lab, box, _ in objects], []
    try:
        h, w = (int(v) for v in image_size)
        tok = tok or mask_tokenizer()
        px = [(b[0] * w, b[1] * h, b[2] * w, b[3] * h) for _, b, _ in objects]
        decoded = tok.try_decode_batch([c for _, _, c in objects], px, [(h, w)] * len(objects))
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        decoded = [(np.zeros((1, 1), bool), f"mask decoding failed: {e}")] * len(objects)
    errors = [{"label": lab, "reason": r} for (lab, _, _), (_, r) in zip(objects, decoded) if r]
    return [(lab, box, m) for (lab, box, _), (m, _) in zip(objects, decoded)], errors


def metric(threshold: float | None = None, fast: bool = False) -> SegmentationMetric:
    """Mask mAP, Dice and IoU per label (cxrvlm.metrics.SegmentationMetric)."""
    return SegmentationMetric()


def film_size(ctx: ReadContext) -> tuple[int, int]:
    """(H, W) of the film the interpreter holds: the input image's size, or less when a big file was read reduced.
    Masks are decoded and refined at it, and written at the input's size (`rle_encode_resized`)."""
    h, w = np.shape(ctx.pixels)[:2]
    return int(h), int(w)


def _kept_objects(ctx: ReadContext, pred: Prediction, size: tuple[int, int]) -> list[tuple]:
    """(label, box, mask, codes) of the objects with a non-empty mask of `size` (a warning for the rest)."""
    kept = [(label, box, mask, codes) for (label, box, mask), codes in zip(pred.masks, pred.extra.get("codes", []))
            if mask is not None and mask.shape == size and mask.any()]
    if len(kept) < len(pred.masks):
        ctx.warn(f"{NAME}: {len(pred.masks) - len(kept)} object(s) with an empty mask dropped")
    return kept


def _decoded_objects(ctx: ReadContext, film: tuple[int, int]) -> tuple[list[tuple], list[float]]:
    """The asked labels' objects with their masks decoded at the film's size, and their scores (the prediction is
    not kept: a big film's masks are held once)."""
    labels = ctx.options.segment_labels
    text, token_scores, pred = _reading.generate_objects(ctx, TASK, prompt(labels), labels, size=film)
    kept = _kept_objects(ctx, pred, film)
    return kept, _reading.object_confidences(ctx, NAME, text, token_scores,
                                             [_reading.mask_tokens(b, c) for _, b, _, c in kept])


def read(ctx: ReadContext) -> dict[str, Any]:
    """Masks of the asked labels as COCO RLE at the input image's size (redrawn on the film by the mask refiner
    unless the options say not to), each with its tokens' confidence and its box in pixels. The masks are decoded
    and refined at the film's size, which is the input's unless a big file was read reduced."""
    kept, scores = _decoded_objects(ctx, film_size(ctx))
    if ctx.options.refine_masks and kept:
        try:
            kept = refine_objects(ctx.pixels, kept)
        except (ValueError, OSError, RuntimeError) as e:
            ctx.warn(f"{NAME}: masks not refined ({e}); they are the decoded masks")
    h, w = ctx.image_size
    return {"segmentations": [{"label": label, "box": _reading.to_pixels(box, h, w),
                               "mask": rle_encode_resized(mask, (h, w)), "score": round(s, 6)}
                              for (label, box, mask, *_), s in zip(kept, scores)]}


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=160, tokens_per_object=40,  # 4 loc + 16 seg tokens + a label per mask (two lungs and some)
    headline=("dice", "map"),
    answer_shape=BOXES_AND_MASKS,  # each object: four <loc>, sixteen <seg>, then its label
    coordinates=True, zoom_shift_safe=True,  # loc tokens, and mask codes relative to their box: zoom/shift keeps them
    parse_hints=("labels",), reading={"segmentations": []}, read=read))
