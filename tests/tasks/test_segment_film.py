"""A big image read reduced (issue 17 row 6): `segment.read` decodes and refines the masks at the film's size and
writes them at the input's size, so no mask of the input's size is ever built."""
from __future__ import annotations

import re
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import pytest

from cxrvlm.tasks import ReadOptions, segment
from cxrvlm.tokens.rle import rle_decode, rle_encode_resized
from cxrvlm.tokens.shape import AnswerShape

FILM = (600, 500)  # a 3000 x 2500 image read reduced five times
SIZE = (3000, 2500)


def film_lungs() -> tuple[np.ndarray, np.ndarray]:
    """(film pixels, the patient's right lung as a mask of the film)."""
    y, x = np.mgrid[0:FILM[0], 0:FILM[1]]
    right = ((x - 0.3 * FILM[1]) / (0.14 * FILM[1])) ** 2 + ((y - 0.5 * FILM[0]) / (0.3 * FILM[0])) ** 2 <= 1
    left = ((x - 0.7 * FILM[1]) / (0.14 * FILM[1])) ** 2 + ((y - 0.5 * FILM[0]) / (0.3 * FILM[0])) ** 2 <= 1
    return np.where(right | left, 0.15, 0.75).astype(np.float32), right


@dataclass
class FilmContext:
    """A `cxrvlm.tasks.ReadContext` holding a reduced film of a bigger image, answering with a scripted text."""

    pixels: np.ndarray
    answer: str
    image_size: tuple[int, int] = SIZE
    options: ReadOptions = field(default_factory=lambda: ReadOptions(segment_labels=("right lung",)))
    second: str | None = None
    prior_days: float | None = None
    warnings: list[str] = field(default_factory=list)

    def generate(self, prefix: str, budget: int, shape: AnswerShape, pair: bool = False) -> tuple[str, list]:
        return self.answer, [(t, 0.9) for t in re.findall(r"<[^>]+>", self.answer)]

    def labels(self) -> None:
        return None

    def score(self, prefix: str, candidates: list[str], pair: bool = False) -> list[float]:
        raise AssertionError("segment does not score candidates")

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture(scope="module")
def answer() -> str:
    (_, tokens), = segment.encode_objects([film_lungs()[1]])
    return f"{tokens} right lung"


@pytest.mark.parametrize("refine", [False, True])
def test_masks_are_decoded_on_the_film_and_written_at_the_inputs_size(answer: str, refine: bool) -> None:
    pixels, lung = film_lungs()
    ctx = FilmContext(pixels, answer, options=ReadOptions(segment_labels=("right lung",), refine_masks=refine))
    (got,) = segment.read(ctx)["segmentations"]
    assert not ctx.warnings
    mask = rle_decode(got["mask"])
    assert got["mask"]["size"] == list(SIZE) and mask.shape == SIZE
    if not refine:  # the decoded film-size mask, each film pixel 5 x 5 pixels of the input
        decoded = segment.parse(answer, FILM).masks[0][2]
        assert got["mask"] == rle_encode_resized(decoded, SIZE)
        np.testing.assert_array_equal(mask[2::5, 2::5], decoded)
    big_lung = lung.repeat(5, axis=0).repeat(5, axis=1)
    assert (mask & big_lung).sum() / (mask | big_lung).sum() > 0.85
    ys, xs = np.nonzero(big_lung)
    assert np.allclose(got["box"], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=0.04 * SIZE[1])


def test_a_reduced_reading_allocates_less_than_one_mask_of_the_inputs_size(answer: str) -> None:
    """numpy's allocations while reading (traced): under one bool mask of 3000 x 2500 (7.5 MB); decoding and
    refining at the input's size held several of them, and float copies four times as big."""
    ctx = FilmContext(film_lungs()[0], answer)
    segment.read(ctx)  # weights loaded and cached before measuring
    tracemalloc.start()
    try:
        segment.read(ctx)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < SIZE[0] * SIZE[1], peak
