"""A file larger than `inputs.WHOLE_PIXELS` is read reduced (issue 17 row 6): the reading's size, boxes and masks stay
in the file's pixels, and the mask refiner and the overlay work from the reduced film."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from infer_fixtures import ScriptedGenerate
from PIL import Image

from cxrvlm.infer import Interpreter, inputs
from cxrvlm.infer.overlay import render_overlay
from cxrvlm.io import to_uint8
from cxrvlm.tasks import segment
from cxrvlm.tokens.rle import rle_decode

H, W = 240, 200


def _lung(cx: float) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return ((x - cx * W) / (0.16 * W)) ** 2 + ((y - 0.5 * H) / (0.3 * H)) ** 2 <= 1.0


@pytest.fixture(scope="module")
def film_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    film = np.where(_lung(0.3) | _lung(0.7), 0.15, 0.75).astype(np.float32)
    path = tmp_path_factory.mktemp("big") / "film.png"
    Image.fromarray(to_uint8(film)).convert("RGB").save(path)
    return path


def _reading(model: Any, path: Path, monkeypatch: pytest.MonkeyPatch, film_pixels: int,
             whole_pixels: int | None = None) -> tuple[dict, np.ndarray]:
    short = _lung(0.3)
    short[int(0.68 * H):] = False
    (_, tokens), = segment.encode_objects([short])
    monkeypatch.setattr(model, "generate", ScriptedGenerate(model, {"segment": f"{tokens} right lung"}))
    monkeypatch.setattr(inputs, "FILM_PIXELS", film_pixels)
    monkeypatch.setattr(inputs, "WHOLE_PIXELS", whole_pixels or film_pixels)
    return Interpreter(model, name="tiny-test").interpret_with_pixels(str(path), tasks=["segment"])


def test_reduced_film_reading_is_in_the_files_pixels(tiny_model: Any, film_png: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    whole, whole_pixels = _reading(tiny_model, film_png, monkeypatch, H * W)
    reduced, film = _reading(tiny_model, film_png, monkeypatch, (H // 2) * (W // 2))
    assert whole_pixels.shape == (H, W) and film.shape == (H // 2, W // 2)
    assert reduced["image_size"] == whole["image_size"] == [H, W]
    (seg,), (seg_whole,) = reduced["segmentations"], whole["segmentations"]
    assert seg["mask"]["size"] == [H, W]
    mask, mask_whole = rle_decode(seg["mask"]), rle_decode(seg_whole["mask"])
    assert (mask & mask_whole).sum() / (mask | mask_whole).sum() > 0.9  # the refiner reads the reduced film alike
    assert np.allclose(seg["box"], seg_whole["box"], atol=6)
    picture, picture_whole = render_overlay(film, reduced), render_overlay(whole_pixels, whole)
    assert picture.size == picture_whole.size  # drawn at the file's size, whatever the pixels' size
    difference = np.abs(np.asarray(picture, np.float32) - np.asarray(picture_whole, np.float32)).mean()
    assert difference < 6, difference


def test_a_file_over_the_whole_limit_is_read_within_the_film_limit(tiny_model: Any, film_png: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    film_pixels = 80 * 67  # a third of 240 x 200 a side
    whole, whole_pixels = _reading(tiny_model, film_png, monkeypatch, film_pixels, whole_pixels=H * W)
    reduced, film = _reading(tiny_model, film_png, monkeypatch, film_pixels, whole_pixels=H * W - 1)
    assert whole_pixels.shape == (H, W) and film.shape == (80, 67)
    assert reduced["image_size"] == whole["image_size"] == [H, W]
    assert [s["mask"]["size"] for s in reduced["segmentations"]] == [[H, W]]
