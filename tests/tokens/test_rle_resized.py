"""COCO RLE straight from a small mask to a big image's size, and a big mask read at a small size (issue 17 row 6):
both equal resizing by nearest neighbour with plain numpy, then encoding or decoding."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cxrvlm.tokens.rle import rle_counts, rle_decode, rle_decode_resized, rle_encode, rle_encode_resized

MASKS = st.integers(1, 24).flatmap(lambda h: st.integers(1, 24).flatmap(
    lambda w: arrays(bool, (h, w), elements=st.booleans())))
SIDES = st.integers(1, 80)


def resized(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest neighbour written out: each cell takes the mask pixel under its centre."""
    rows = [int((i + 0.5) * mask.shape[0] / h) for i in range(h)]
    cols = [int((j + 0.5) * mask.shape[1] / w) for j in range(w)]
    return mask[np.ix_(rows, cols)]


@settings(max_examples=300, deadline=None)
@given(mask=MASKS, h=SIDES, w=SIDES)
@example(mask=np.ones((3, 2), bool), h=7, w=5)  # starts with a run of 1s: a zero-length first run
@example(mask=np.zeros((3, 2), bool), h=7, w=5)
@example(mask=np.eye(4, dtype=bool), h=4, w=4)  # its own size
def test_encode_resized_is_resize_then_encode(mask: np.ndarray, h: int, w: int) -> None:
    got = rle_encode_resized(mask, (h, w))
    assert got == rle_encode(resized(mask, h, w))
    assert got["size"] == [h, w] and int(rle_counts(got).sum()) == h * w


@settings(max_examples=300, deadline=None)
@given(mask=MASKS, h=SIDES, w=SIDES)
def test_decode_resized_is_decode_then_resize(mask: np.ndarray, h: int, w: int) -> None:
    rle = rle_encode(mask)
    np.testing.assert_array_equal(rle_decode_resized(rle, (h, w)), resized(mask, h, w))
    np.testing.assert_array_equal(rle_decode_resized({"size": rle["size"], "counts": list(rle_counts(rle))},
                                                     (h, w)), resized(mask, h, w))


def test_an_integer_factor_repeats_rows_and_columns() -> None:
    mask = np.random.default_rng(0).random((50, 40)) < 0.4
    got = rle_decode(rle_encode_resized(mask, (150, 80)))
    np.testing.assert_array_equal(got, mask.repeat(3, axis=0).repeat(2, axis=1))


def test_a_big_mask_is_written_from_its_film() -> None:
    """A lung at 2000 x 1500 written at 7000 x 5250: the mask a 7000 x 5250 image read reduced would give."""
    y, x = np.mgrid[0:2000, 0:1500]
    lung = ((x - 500) / 300.0) ** 2 + ((y - 1000) / 700.0) ** 2 < 1
    rle = rle_encode_resized(lung, (7000, 5250))
    assert rle["size"] == [7000, 5250]
    np.testing.assert_array_equal(rle_decode_resized(rle, (2000, 1500)), lung)
    assert abs(int(rle_counts(rle)[1::2].sum()) - lung.sum() * 3.5 * 3.5) < 0.01 * lung.sum() * 3.5 * 3.5


@pytest.mark.parametrize("mask, size", [(np.zeros((2, 3, 1), bool), (4, 4)), (np.zeros((0, 3), bool), (4, 4)),
                                        (np.zeros((2, 3), bool), (0, 4))])
def test_resizing_to_or_from_nothing_is_a_clear_error(mask: np.ndarray, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="mask must be 2-D|cannot resize"):
        rle_encode_resized(mask, size)
