"""Is there anything to read? Checks that stop a confident verdict on an image the models cannot read.

Two steps before the model sees the image. Rules for the obvious (`content_problems`: tiny, one grey level, an
almost empty frame), then the view gate (`models.view_gate`, a small CNN trained on real negatives): a lateral
view, another body part or modality, a mask or drawing, an inverted film. A refused image's reading has
`quality = {"assessable": false, "view": ..., "reasons": [...]}` and its task fields stay empty.
"""
from __future__ import annotations

from typing import Any

import numpy as np

MIN_SIDE = 64  # pixels: smaller is an icon or a thumbnail, not a radiograph anyone could read
MIN_RANGE = 0.02  # of the [0, 1] scale, between the 1st and 99th percentiles: less is one flat grey level
MAX_FLAT_SHARE = 0.97  # share of pixels within one grey level of the median: more is an (almost) empty frame
_SAMPLE_SIDE = 512  # the rules read a strided sample at most this many pixels a side (enough for percentiles)


def content_problems(pixels: np.ndarray) -> list[str]:
    """Why a view (float (H, W) in [0, 1]) has nothing to read; [] when it has content."""
    h, w = np.shape(pixels)
    if min(h, w) < MIN_SIDE:
        return [f"the image is [{h}, {w}] pixels ([height, width], as every size in a reading); a radiograph needs "
                f"at least {MIN_SIDE} a side"]
    step = max(1, -(-max(h, w) // _SAMPLE_SIDE))
    sample = np.asarray(pixels[::step, ::step], dtype=np.float32)
    low, high = np.percentile(sample, [1, 99])
    if high - low < MIN_RANGE:
        return [f"the image is one flat grey level (1st-99th percentile range {high - low:.3f} of the scale): "
                "no content to read"]
    flat = float(np.mean(np.abs(sample - np.median(sample)) <= 1.0 / 255.0))
    if flat > MAX_FLAT_SHARE:
        return [f"{flat:.0%} of the image is one grey level: an (almost) empty frame"]
    return []


def assess(pixels: np.ndarray, gate: Any | None = None) -> dict[str, Any]:
    """The reading's `quality` field for a frontal view: the rules, then (when they pass and a `gate` is given) the
    view gate. `view` is the kind the gate sees ("frontal", "lateral", "other_body_part", "not_a_radiograph",
    "inverted"), or None when it did not run; `view_probabilities` its probability of each kind."""
    problems = content_problems(pixels)
    if problems or gate is None:
        return quality(problems)
    probs = gate.probabilities(pixels)
    return quality(gate.problems_of(probs), gate.view(probs), probs)


def quality(problems: list[str], view: str | None = None,
            view_probabilities: dict[str, float] | None = None) -> dict[str, Any]:
    """The reading's `quality` field."""
    return {"assessable": not problems, "view": view, "reasons": list(problems),
            **({"view_probabilities": dict(view_probabilities)} if view_probabilities else {})}
