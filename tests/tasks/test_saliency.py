"""Saliency entries of a reading: the maps as small PNGs, their peaks in input pixels, which labels get one."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from cxrvlm.tasks import labels, saliency


def test_png_round_trip_and_peak_in_input_pixels():
    cam = np.zeros((8, 8))
    cam[2, 6] = 3.0
    cam[7, 0] = -1.0
    cells = np.asarray(Image.open(io.BytesIO(base64.b64decode(saliency.map_png(cam)))))
    assert cells.shape == (8, 8) and cells[2, 6] == 255 and cells[7, 0] == 0
    assert saliency.peak(cam, (400, 800)) == [650.0, 125.0]  # (x, y): column 6.5 / 8 of 800, row 2.5 / 8 of 400
    assert not saliency.normalised(np.ones((2, 2))).any()


def test_tuberculosis_and_every_called_finding_get_a_map():
    names = list(labels.LABEL_SPACE)
    head = {n: 0.01 for n in names} | {"No Finding": 0.9, "Cardiomegaly": 0.7}
    maps = np.random.default_rng(0).normal(size=(len(names), 8, 8))
    got = saliency.entries(maps, names, head, 0.36, (512, 512))
    assert [e["label"] for e in got] == ["tuberculosis", "cardiomegaly"]
    assert got[0]["grid"] == [8, 8] and got[0]["method"].startswith("class activation map")
