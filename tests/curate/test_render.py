from __future__ import annotations

from pathlib import Path

import numpy as np
from curate_fixtures import FAKE_TASK
from PIL import Image

from cxrvlm.curate.render import PANEL_HEIGHT, colour, render_example
from cxrvlm.examples import Example
from cxrvlm.tokens.loc import encode_box


def _grey(path: Path, size: tuple[int, int] = (200, 160)) -> str:
    Image.fromarray(np.full(size, 128, np.uint8)).save(path)
    return str(path)


def _example(images: list[str], suffix: str, target: dict | None = None) -> Example:
    return Example("fake", images, "detect right lung", suffix, "s:1", "p1", "fake", target=target or {})


def test_boxes_from_the_task_parse_are_drawn_in_the_label_colour(tmp_path: Path) -> None:
    img = _grey(tmp_path / "a.png")
    ex = _example([img], f"{encode_box(0.25, 0.25, 0.75, 0.75)} right lung")
    out = render_example(ex, tmp_path / "card" / "x.png", FAKE_TASK, title="detect")
    arr = np.asarray(Image.open(out).convert("RGB"))
    assert arr.shape[0] > PANEL_HEIGHT  # text panel under the image
    width = round(160 * PANEL_HEIGHT / 200)
    # the box's right edge (x = 0.75) at mid-height carries the label's colour; the centre stays grey
    x, y = round(0.75 * width) - 1, PANEL_HEIGHT // 2
    edge = arr[y, x - 2: x + 3].astype(int)
    assert np.abs(edge - np.array(colour("right lung"))).sum(axis=1).min() < 60
    assert np.abs(arr[y, width // 2].astype(int) - 128).max() < 3


def test_masks_from_the_target_are_overlaid_and_images_tiled(tmp_path: Path) -> None:
    img = _grey(tmp_path / "a.png")
    prior = _grey(tmp_path / "b.png", (100, 100))
    mask = np.zeros((200, 160), np.uint8)
    mask[:, :80] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    ex = _example([img, prior], "", {"masks": [{"label": "lungs", "mask": str(tmp_path / "m.png")}]})
    out = render_example(ex, tmp_path / "y.png", None)
    arr = np.asarray(Image.open(out).convert("RGB")).astype(int)
    width = round(160 * PANEL_HEIGHT / 200)
    inside, outside = arr[PANEL_HEIGHT // 2, width // 4], arr[PANEL_HEIGHT // 2, 3 * width // 4]
    assert np.abs(outside - 128).max() < 3
    expected = 0.6 * 128 + 0.4 * np.array(colour("lungs"))
    assert np.abs(inside - expected).max() < 4
    assert arr.shape[1] >= width + 8 + PANEL_HEIGHT  # the second image beside the first
