"""The pointing game (Zhang et al. 2016) for the label head's saliency maps: for each film with a box of a finding the
head has, is the hottest cell of that finding's class activation map inside one of its boxes? Beside it, the hit
rate of always pointing at the image centre, the usual baseline.

    pointing_game(model, examples)   # {"n", "hits", "hit_rate", "centre_hit_rate", "by_label": {...}}

Boxes come from the examples whose target lists labelled boxes (detection: every box of the labels it asks for),
normalised to [0, 1].
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrvlm.data.images import ImageCache
from cxrvlm.examples import Example
from cxrvlm.tasks import _text


def _inside(x: float, y: float, boxes: Sequence[Sequence[float]]) -> bool:
    return any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)


def cases(examples: Sequence[Example], names: Sequence[str]) -> dict[tuple[str, str], tuple[Example, list]]:
    """(image, head label) -> (an example of that image, the label's boxes), for the labels the head has."""
    by_phrase = {_text.phrase(n): n for n in names}
    out: dict[tuple[str, str], tuple[Example, list]] = {}
    for ex in examples:
        for b in ex.target.get("boxes") or []:
            name = by_phrase.get(_text.normalise(b["label"]))
            if name is not None:
                out.setdefault((ex.images[0], name), (ex, []))[1].append(list(b["box"]))
    return out


def pointing_game(model: Any, examples: Sequence[Example]) -> dict[str, Any]:
    names = list(model.label_names)
    found = cases(examples, names)
    if not found:
        raise ValueError(f"no example with a box of a label the head has ({', '.join(names) or 'no head'})")
    cache = ImageCache(int(model.config.image_size))
    per_label: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for (_, name), (ex, boxes) in found.items():
        cam = model.label_maps(cache.views(ex)[0])[names.index(name)]
        i, j = np.unravel_index(int(np.argmax(cam)), cam.shape)
        hit = _inside((j + 0.5) / cam.shape[1], (i + 0.5) / cam.shape[0], boxes)
        per_label[_text.phrase(name)].append((hit, _inside(0.5, 0.5, boxes)))
    rows = [r for v in per_label.values() for r in v]
    return {"n": len(rows), "hits": sum(h for h, _ in rows), "hit_rate": float(np.mean([h for h, _ in rows])),
            "centre_hit_rate": float(np.mean([c for _, c in rows])),
            "by_label": {k: {"n": len(v), "hit_rate": float(np.mean([h for h, _ in v])),
                             "centre_hit_rate": float(np.mean([c for _, c in v]))} for k, v in sorted(per_label.items())}}
