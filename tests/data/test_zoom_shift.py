"""Location-aware augmentation: the image is zoomed and shifted, and the loc tokens of the answer follow it."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from cxrvlm.data.images import draw_zoom_shift, zoom_shift, zoomed_and_shifted
from cxrvlm.tasks import detect, segment
from cxrvlm.tokens.loc import LOC_RE, decode_locs, encode_box, locs_extent, zoom_shift_locs

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from test_segment import lungs, study  # noqa: E402


def _box(text: str) -> tuple[float, ...]:
    return decode_locs([int(t) for t in LOC_RE.findall(text)][:4])


def test_loc_tokens_follow_the_formula_and_whole_boxes_are_required() -> None:
    moved = _box(zoom_shift_locs(f"x {encode_box(0.2, 0.3, 0.6, 0.8)} right lung", 1.1, 0.03, -0.02))
    want = (1.1 * -0.3 + 0.53, 1.1 * -0.2 + 0.48, 1.1 * 0.1 + 0.53, 1.1 * 0.3 + 0.48)
    assert np.allclose(moved, want, atol=1 / 1023)
    with pytest.raises(ValueError, match="not whole boxes"):
        zoom_shift_locs("<loc0001><loc0002>", 1.0, 0.0, 0.0)
    assert zoom_shift_locs("no boxes here", 1.2, 0.1, 0.1) == "no boxes here"


def test_pixels_move_as_the_loc_tokens_say() -> None:
    image = np.zeros((256, 256), np.float32)
    image[77:205, 51:154] = 1.0  # x 0.2-0.6, y 0.3-0.8 of the width and height
    for zoom, dx, dy in [(1.1, 0.03, -0.02), (0.9, -0.05, 0.04), (1.0, 0.0, 0.0)]:
        moved = zoom_shift(image, zoom, dx, dy) > 0.5
        ys, xs = np.flatnonzero(moved.any(1)), np.flatnonzero(moved.any(0))
        got = (xs[0] / 256, ys[0] / 256, (xs[-1] + 1) / 256, (ys[-1] + 1) / 256)
        want = _box(zoom_shift_locs(encode_box(51 / 256, 77 / 256, 154 / 256, 205 / 256), zoom, dx, dy))
        assert np.allclose(got, want, atol=1.5 / 256), (zoom, dx, dy, got, want)


@pytest.mark.parametrize("extent", [(0.1, 0.1, 0.9, 0.9), (0.0, 0.02, 1.0, 0.97), (0.3, 0.3, 0.5, 0.5), None])
def test_drawn_zoom_and_shift_keep_every_box_inside(extent) -> None:
    rng = np.random.default_rng(0)
    draws = [draw_zoom_shift(extent, rng) for _ in range(300)]
    for zoom, dx, dy in draws:
        assert 0.9 <= zoom <= 1.1 and abs(dx) <= 0.05 and abs(dy) <= 0.05
        if extent is not None:
            x1, y1 = (zoom * (v - 0.5) + 0.5 + s for v, s in zip(extent[:2], (dx, dy)))
            x2, y2 = (zoom * (v - 0.5) + 0.5 + s for v, s in zip(extent[2:], (dx, dy)))
            assert -1e-9 <= x1 and -1e-9 <= y1 and x2 <= 1 + 1e-9 and y2 <= 1 + 1e-9
    assert len({d[0] for d in draws}) > 1  # it does vary


def test_a_moved_segmentation_answer_decodes_to_the_moved_mask() -> None:
    from cxrvlm.examples import Example

    mask = lungs()  # 240 x 300
    ex = segment.format(study({"lungs": mask}), random.Random(1))[0]
    ex = Example(**{**ex.to_json(), "images": ["/data/v.png"]})
    moved, (pixels,) = zoomed_and_shifted(ex, mask.astype(np.float32), np.random.default_rng(3))
    assert moved.suffix != ex.suffix and moved.target == ex.target
    params = draw_zoom_shift(locs_extent(ex.suffix), np.random.default_rng(3))  # the draw it made
    want = zoom_shift(mask.astype(np.float32), *params) > 0.5
    assert np.array_equal(pixels > 0.5, want)
    pred = segment.parse(moved.suffix, image_size=mask.shape, labels=ex.target["labels"])
    got = np.logical_or.reduce([m for _, _, m in pred.masks])
    assert pred.valid and (got & want).sum() / (got | want).sum() > 0.85


def test_detection_prompt_and_answer_rewritten_together() -> None:
    from cxrvlm.examples import Example

    ex = Example("detect", ["/x.png"], detect.prompt(["right lung"]), detect.render([("right lung", (0.1, 0.2, 0.4, 0.9))]),
                 "s", "p", "src")
    moved, _ = zoomed_and_shifted(ex, np.zeros((64, 64), np.float32), np.random.default_rng(0))
    assert moved.prefix == ex.prefix and detect.parse(moved.suffix, labels=["right lung"]).valid
    assert locs_extent(moved.suffix) != locs_extent(ex.suffix)
