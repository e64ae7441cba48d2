"""PNG / JPEG / TIFF reading: bit depths, scaling, colour, orientation."""
from __future__ import annotations

import numpy as np
import pytest
from fixtures_images import gradient, write_jpeg, write_palette_png, write_png, write_tiff
from PIL import Image, ImageOps

from cxrvlm.io import probe_image, read_image


def test_png_8bit_is_divided_by_255(tmp_path):
    arr = gradient(40, 30)
    image = read_image(write_png(tmp_path / "a.png", arr))
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (40, 30)
    np.testing.assert_allclose(image.pixels, arr / 255.0, atol=1e-7)
    m = image.meta
    assert (m.format, m.source_size, m.bit_depth, m.photometric, m.scaling) == ("png", (40, 30), 8, "L", "bit_depth")
    assert m.view_position is None and m.patient_id is None


def test_png_16bit_is_min_max_scaled(tmp_path):
    # 12-bit values in a 16-bit container with an offset, as detector exports store them
    arr = (gradient(32, 24, maxval=3000, dtype=np.float64) + 500).astype(np.uint16)
    image = read_image(write_png(tmp_path / "a16.png", arr))
    assert image.meta.bit_depth == 16 and image.meta.scaling == "min_max"
    expected = (arr.astype(np.float64) - arr.min()) / (arr.max() - arr.min())
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.pixels.min() == 0.0 and image.pixels.max() == 1.0
    # 16-bit precision survives: neighbouring values one unit apart stay distinct
    assert len(np.unique(image.pixels)) == len(np.unique(arr))


def test_constant_16bit_falls_back_to_bit_depth(tmp_path):
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    image = read_image(write_png(tmp_path / "flat.png", arr))
    np.testing.assert_allclose(image.pixels, 32768 / 65535, atol=1e-6)


def test_tiff_16bit(tmp_path):
    arr = gradient(20, 36, maxval=60000, dtype=np.uint16)
    image = read_image(write_tiff(tmp_path / "a.tif", arr))
    assert (image.meta.format, image.meta.bit_depth, image.meta.source_size) == ("tiff", 16, (20, 36))
    np.testing.assert_allclose(image.pixels, (arr - arr.min()) / (arr.max() - arr.min()), atol=1e-6)


def test_tiff_float(tmp_path):
    arr = gradient(10, 12, maxval=1, dtype=np.float32) * 7.5 - 2.0
    image = read_image(write_tiff(tmp_path / "f.tiff", arr))
    assert image.meta.photometric == "F"
    np.testing.assert_allclose(image.pixels, (arr - arr.min()) / (arr.max() - arr.min()), atol=1e-6)


def test_jpeg_gray(tmp_path):
    arr = gradient(64, 48)
    image = read_image(write_jpeg(tmp_path / "a.jpg", arr, quality=100))
    assert image.meta.format == "jpeg" and image.meta.bit_depth == 8
    assert np.abs(image.pixels - arr / 255.0).max() < 6 / 255  # lossy, but close at quality 100


def test_rgb_and_rgba_become_luma(tmp_path):
    rgb = np.stack([gradient(16, 20), gradient(16, 20)[::-1], np.full((16, 20), 40, np.uint8)], axis=-1)
    expected = (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) / 255.0
    image = read_image(write_png(tmp_path / "rgb.png", rgb))
    assert image.meta.photometric == "RGB" and image.pixels.shape == (16, 20)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    rgba = np.concatenate([rgb, np.full((16, 20, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_allclose(read_image(write_png(tmp_path / "rgba.png", rgba)).pixels, expected, atol=1e-6)


def test_gray_stored_as_rgb_is_unchanged(tmp_path):
    arr = gradient(16, 16)
    image = read_image(write_png(tmp_path / "g.png", np.stack([arr] * 3, axis=-1)))
    np.testing.assert_allclose(image.pixels, arr / 255.0, atol=1e-6)


def test_palette_png(tmp_path):
    levels = np.array([0, 60, 120, 250], dtype=np.uint8)
    idx = np.arange(12 * 10).reshape(12, 10) % 4
    rgb = np.stack([levels[idx]] * 3, axis=-1)
    path = write_palette_png(tmp_path / "p.png", rgb)
    with Image.open(path) as im:
        assert im.mode == "P"
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, levels[idx] / 255.0, atol=1e-6)


def test_one_bit_png(tmp_path):
    arr = np.eye(9, 7, dtype=bool)
    image = read_image(write_png(tmp_path / "b.png", arr))
    assert image.meta.bit_depth == 1
    np.testing.assert_array_equal(image.pixels, arr.astype(np.float32))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_matches_pillow(tmp_path, orientation):
    arr = gradient(24, 40)
    path = write_jpeg(tmp_path / f"o{orientation}.jpg", arr, orientation=orientation)
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im), dtype=np.float32) / 255.0
    image = read_image(path)
    assert image.meta.source_size == upright.shape
    assert probe_image(path).source_size == upright.shape
    np.testing.assert_allclose(image.pixels, upright, atol=1e-6)


# What a viewer shows for each TIFF/EXIF Orientation value, written out independently of the reader.
UPRIGHT = {
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.T, 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).T, 8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_16bit_orientation(tmp_path, orientation):
    arr = gradient(10, 16, maxval=4000, dtype=np.uint16)
    image = read_image(write_tiff(tmp_path / "o.tif", arr, orientation=orientation))
    expected = UPRIGHT[orientation]((arr - arr.min()) / (arr.max() - arr.min()))
    assert image.meta.source_size == expected.shape
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)


def test_content_wins_over_extension(tmp_path):
    arr = gradient(12, 12)
    path = tmp_path / "mislabelled.png"
    write_jpeg(path, arr)
    assert read_image(path).meta.format == "jpeg"
    path = tmp_path / "no_extension"
    write_png(path, arr)
    assert read_image(path).meta.format == "png"


def test_probe_does_not_decode(tmp_path):
    arr = gradient(30, 20, maxval=1000, dtype=np.uint16)
    meta = probe_image(write_png(tmp_path / "a.png", arr))
    assert (meta.format, meta.source_size, meta.bit_depth, meta.photometric) == ("png", (30, 20), 16, "I;16")
