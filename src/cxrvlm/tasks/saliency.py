"""Saliency of the label head's outputs: where on the film the TB probability and each called finding come from.

The head is linear on the mean of the first encoder's g x g tokens, so each output's class activation map (CAM,
Zhou et al. 2016) is exact: cell (i, j) holds the logit that cell's token alone would give, and the map's mean is
the output's logit. A reading carries the map of tuberculosis and of every finding the head calls (`labels.called`)
as a small grey PNG (g x g, 0-255 from the map's lowest to its highest cell; draw it stretched over the film with
smoothing) and the hottest cell's centre in pixels of the input image.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from cxrvlm.io.encode import png_base64
from cxrvlm.tasks import _text, labels

METHOD = "class activation map of the label head (CAM)"


def normalised(cam: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1] between its lowest and highest cell (all zeros when flat)."""
    low, high = float(cam.min()), float(cam.max())
    return (cam - low) / (high - low) if high > low else np.zeros_like(cam, dtype=np.float64)


def map_png(cam: np.ndarray) -> str:
    """A map as a base64 8-bit grey PNG of its own g x g cells."""
    return png_base64(Image.fromarray(np.round(normalised(cam) * 255).astype(np.uint8), mode="L"), optimize=False)


def peak(cam: np.ndarray, image_size: tuple[int, int]) -> list[float]:
    """[x, y] in pixels of an image of `image_size` (H, W): the centre of the map's hottest cell."""
    g_h, g_w = cam.shape
    i, j = np.unravel_index(int(np.argmax(cam)), cam.shape)
    h, w = image_size
    return [round(float((j + 0.5) / g_w * w), 1), round(float((i + 0.5) / g_h * h), 1)]


def entries(maps: np.ndarray, names: Sequence[str], head: Mapping[str, float], tb_threshold: float | None,
            image_size: tuple[int, int]) -> list[dict[str, Any]]:
    """The reading's `saliency`: tuberculosis, then each called finding (not "No Finding"), in the head's order."""
    called = set(labels.called(head, tb_threshold))
    out = []
    for k, name in enumerate(names):
        if name == labels.TB or (name in called and name != _text.NO_FINDING):
            out.append({"label": _text.phrase(name), "method": METHOD, "grid": list(maps[k].shape),
                        "png": map_png(maps[k]), "peak": peak(maps[k], image_size)})
    return out
