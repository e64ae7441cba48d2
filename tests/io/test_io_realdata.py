"""Reading the real chest X-rays in ../shared/data (skipped where that folder is absent)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cxrvlm.io import probe_image, read_image

pytestmark = pytest.mark.realdata


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check(image, path):
    assert image.pixels.dtype == np.float32 and image.pixels.ndim == 2
    assert 0.0 <= image.pixels.min() and image.pixels.max() <= 1.0
    assert image.pixels.std() > 0.05, f"{path} decoded to a nearly flat image"
    assert image.meta.source_size == image.pixels.shape


def test_tb_pngs(shared_data):
    rows = _rows(shared_data / "tb" / "labels.csv")
    for row in rows[:3]:
        path = next((shared_data / "tb" / "images").glob(f"{row['image_id']}*"))
        image = read_image(path)
        _check(image, path)
        assert image.meta.format == "png" and image.meta.bit_depth == 8
        assert image.pixels.shape == (int(row["height"]), int(row["width"]))


def test_covid_jpeg_and_png(shared_data):
    meta = {r["image_id"]: r for r in _rows(shared_data / "covid" / "metadata.csv")}
    images = shared_data / "covid" / "images"
    picks = [next(images.glob("*.jpg")), next(images.glob("*.png"))]
    for path in picks:
        image = read_image(path)
        _check(image, path)
        assert image.meta.format in ("jpeg", "png")
        row = meta.get(path.name)
        if row and row.get("width") and row.get("height"):
            assert image.pixels.shape == (int(float(row["height"])), int(float(row["width"])))
        assert probe_image(path).source_size == image.pixels.shape
