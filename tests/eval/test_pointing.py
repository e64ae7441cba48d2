"""The pointing game: a map whose hottest cell is inside the finding's box is a hit; the centre baseline beside it."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cxrvlm.eval.pointing import pointing_game
from cxrvlm.examples import Example


class _PointsTopLeft:
    label_names = ["Tuberculosis", "Cardiomegaly"]
    config = SimpleNamespace(image_size=64)

    def label_maps(self, pixels: np.ndarray) -> np.ndarray:
        maps = np.zeros((2, 4, 4))
        maps[:, 0, 0] = 1.0  # the top-left cell: centre (0.125, 0.125)
        return maps


def _detect(path: str, label: str, box: list[float]) -> Example:
    return Example("detect", [path], f"detect {label}", "", "s1", "p1", "nih",
                   target={"labels": [label], "boxes": [{"label": label, "box": box}]}, meta={})


def test_hits_misses_and_the_centre_baseline(tmp_path):
    path = str(tmp_path / "film.png")
    Image.fromarray(np.full((64, 64), 120, np.uint8)).save(path)
    examples = [_detect(path, "cardiomegaly", [0.0, 0.0, 0.3, 0.3]),  # hit
                _detect(path.replace("film", "film"), "tuberculosis", [0.4, 0.4, 0.6, 0.6]),  # miss; centre hits
                _detect(path, "nodule", [0.0, 0.0, 1.0, 1.0])]  # not a head label: left out
    out = pointing_game(_PointsTopLeft(), examples)
    assert (out["n"], out["hits"], out["hit_rate"], out["centre_hit_rate"]) == (2, 1, 0.5, 0.5)
    assert out["by_label"]["cardiomegaly"]["hit_rate"] == 1.0
    with pytest.raises(ValueError, match="no example with a box"):
        pointing_game(_PointsTopLeft(), examples[2:])
