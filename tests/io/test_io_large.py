"""Big images (issue 17 row 6): read reduced while decoding (`read_image(film_pixels=...)`), a big PNG a band of rows
at a time (`io.png_bands`), with the reading's coordinates still in the file's pixels."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from fixtures_images import gradient, truncate, write_jpeg, write_png
from PIL import Image

from cxrvlm.io import ImageReadError, block_mean, png_bands, read_image, to_uint8
from cxrvlm.io.transforms import reduction_factor
from cxrvlm.tokens.rle import rle_area, rle_decode, rle_encode

H, W = 61, 47  # odd sizes: the edge blocks are partial


def _noise(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


KINDS = {
    "L": lambda: Image.fromarray(_noise(H, W)),
    "LA": lambda: Image.fromarray(_noise(H, W, 2), "LA"),
    "RGB": lambda: Image.fromarray(_noise(H, W, 3)),
    "RGBA": lambda: Image.fromarray(_noise(H, W, 4)),
    "P": lambda: Image.fromarray(_noise(H, W, 3)).convert("P", palette=Image.Palette.ADAPTIVE),
    "I;16": lambda: Image.fromarray(_noise(H, W).astype(np.uint16) * 200 + 7),
    "1": lambda: Image.fromarray(_noise(H, W) > 128),  # not band-decoded: Pillow decodes it whole
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("k", [2, 3, 7])
def test_reduced_read_is_the_block_mean_of_the_whole_read(tmp_path, monkeypatch, kind, k):
    monkeypatch.setattr(png_bands, "BAND_BYTES", 300)  # bands of a few rows: every filter crosses a band edge
    path = tmp_path / "a.png"
    KINDS[kind]().save(path, optimize=True)  # optimize: Pillow picks each row's filter (Paeth, Average, ...)
    whole = read_image(path)
    reduced = read_image(path, film_pixels=-(-H // k) * -(-W // k))
    assert reduced.meta.source_size == (H, W) == whole.pixels.shape
    assert reduced.meta.scaling == whole.meta.scaling
    np.testing.assert_allclose(reduced.pixels, block_mean(whole.pixels, k), atol=1e-6)


def test_band_decoding_is_used_for_the_kinds_it_supports(tmp_path):
    for kind, make in KINDS.items():
        make().save(tmp_path / "a.png")
        assert (png_bands.read_header(tmp_path / "a.png") is not None) == (kind != "1"), kind


def test_a_small_image_is_not_reduced_and_unchanged(tmp_path):
    path = write_png(tmp_path / "a.png", gradient(40, 30))
    np.testing.assert_array_equal(read_image(path, film_pixels=1200).pixels, read_image(path).pixels)


def test_reduced_jpeg_keeps_its_orientation(tmp_path):
    path = write_jpeg(tmp_path / "o.jpg", gradient(60, 40), orientation=6)  # displayed turned: 40 x 60
    reduced = read_image(path, film_pixels=20 * 30)
    assert reduced.meta.source_size == (40, 60) and reduced.pixels.shape == (20, 30)
    np.testing.assert_allclose(reduced.pixels, block_mean(read_image(path).pixels, 2), atol=1e-6)


def test_truncated_big_png_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(png_bands, "BAND_BYTES", 300)
    path = truncate(write_png(tmp_path / "cut.png", _noise(H, W, 3)), 0.6)
    with pytest.raises(ImageReadError, match="truncated or corrupt PNG"):
        read_image(path, film_pixels=100)


@pytest.mark.parametrize("h, w, limit, k", [(10, 10, 100, 1), (10, 10, 99, 2), (7000, 7000, 4096 * 4096, 2),
                                            (1, 50_000, 10_000, 5), (3, 3, 1, 3)])
def test_reduction_factor(h, w, limit, k):
    assert reduction_factor(h, w, limit) == k
    assert -(-h // k) * -(-w // k) <= limit


def test_up_to_whole_pixels_an_image_is_read_whole_and_above_within_the_film(tmp_path):
    path = write_png(tmp_path / "a.png", gradient(40, 30))
    whole = read_image(path).pixels
    np.testing.assert_array_equal(read_image(path, film_pixels=300, whole_pixels=1200).pixels, whole)
    reduced = read_image(path, film_pixels=300, whole_pixels=1199)
    assert reduced.pixels.shape == (20, 15) and reduced.meta.source_size == (40, 30)
    np.testing.assert_allclose(reduced.pixels, block_mean(whole, 2), atol=1e-6)
    assert reduction_factor(7000, 7000, 2048 * 2048, 4096 * 4096) == 4
    assert reduction_factor(4096, 4096, 2048 * 2048, 4096 * 4096) == 1


def test_block_mean_averages_partial_edge_blocks():
    a = np.arange(15, dtype=np.float32).reshape(3, 5)
    np.testing.assert_allclose(block_mean(a, 2), [[3.0, 5.0, 6.5], [10.5, 12.5, 14.0]])


def test_to_uint8_and_rle_area_agree_with_the_plain_computations():
    x = np.random.default_rng(1).uniform(-0.2, 1.2, (33, 17))
    np.testing.assert_array_equal(to_uint8(x), np.rint(np.clip(x.astype(np.float32), 0, 1) * 255).astype(np.uint8))
    mask = x > 0.5
    rle = rle_encode(mask)
    assert rle_area(rle) == int(mask.sum())
    np.testing.assert_array_equal(rle_decode(rle), mask)


def test_big_rgb_png_is_read_in_little_memory(tmp_path):
    """A 3000 x 3000 RGB PNG (Pillow alone would hold 36 MB of it, the float64 gray of old 216 MB) read reduced: its
    peak is under 25 MB above the baseline."""
    y, x = np.mgrid[0:3000, 0:3000]
    gray = ((x // 50 + y // 70) % 256).astype(np.uint8)
    path = write_png(tmp_path / "big.png", np.stack([gray, gray // 2, 255 - gray], axis=-1))
    del y, x, gray
    script = textwrap.dedent(f"""
        import resource
        from cxrvlm.io import read_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = read_image({str(path)!r}, film_pixels=1024 * 1024)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(image.pixels.shape, image.meta.source_size, (after - before) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split(")")
    assert out[0] + ")" == "(1000, 1000)" and out[1] + ")" == " (3000, 3000)"
    assert int(out[2]) < 25, f"peak grew by {out[2]} MB"
