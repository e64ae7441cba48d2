"""Is there anything to read? Rules that stop a confident verdict on an image with no content.

A reading of a blank, constant-grey or tiny image is refused before the model sees it: the reading's `quality` is
`{"assessable": false, "reasons": [...]}` and its task fields stay empty. These are the obvious cases only; a film
with content that is not a frontal chest radiograph (a lateral view, a head film, a mask) passes these rules.
"""
from __future__ import annotations

import numpy as np

MIN_SIDE = 64  # pixels: smaller is an icon or a thumbnail, not a radiograph anyone could read
MIN_RANGE = 0.02  # of the [0, 1] scale, between the 1st and 99th percentiles: less is one flat grey level
MAX_FLAT_SHARE = 0.97  # share of pixels within one grey level of the median: more is an (almost) empty frame
_SAMPLE_SIDE = 512  # the rules read a strided sample at most this many pixels a side (enough for percentiles)


def content_problems(pixels: np.ndarray) -> list[str]:
    """Why a view (float (H, W) in [0, 1]) has nothing to read; [] when it has content."""
    h, w = np.shape(pixels)
    if min(h, w) < MIN_SIDE:
        return [f"the image is {w}x{h} pixels (width x height); a radiograph needs at least {MIN_SIDE} a side"]
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


def quality(problems: list[str]) -> dict[str, object]:
    """The reading's `quality` field."""
    return {"assessable": not problems, "reasons": list(problems)}
