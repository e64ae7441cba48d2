"""resize_to / to_uint8."""
from __future__ import annotations

import numpy as np
import pytest

from cxrvlm.io import resize_to, to_uint8


def test_area_downscale_averages_blocks():
    rng = np.random.default_rng(0)
    pixels = rng.random((64, 48), dtype=np.float32)
    out = resize_to(pixels, (16, 12))
    assert out.shape == (16, 12) and out.dtype == np.float32
    blocks = pixels.reshape(16, 4, 12, 4).mean(axis=(1, 3))  # 4x4 block means = exact area average
    np.testing.assert_allclose(out, blocks, atol=1e-5)


def test_bilinear_upscale_keeps_range_and_float_precision():
    pixels = np.linspace(0, 1, 20 * 10, dtype=np.float32).reshape(20, 10)
    out = resize_to(pixels, (40, 25), method="bilinear")
    assert out.shape == (40, 25)
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert len(np.unique(out)) > 256  # not quantised to 8 bits
    assert np.all(np.diff(out[:, 12]) >= -1e-6)  # a ramp stays monotonic


def test_bicubic_overshoot_is_clipped():
    pixels = np.zeros((16, 16), np.float32)
    pixels[:, 8:] = 1.0
    out = resize_to(pixels, (40, 40), method="bicubic")
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_same_size_is_a_copy():
    pixels = np.ones((4, 5), np.float32)
    out = resize_to(pixels, (4, 5))
    out[0, 0] = 0
    assert pixels[0, 0] == 1


def test_resize_errors():
    with pytest.raises(ValueError, match="unknown method"):
        resize_to(np.zeros((4, 4)), (2, 2), method="lanczos9")
    with pytest.raises(ValueError, match="positive"):
        resize_to(np.zeros((4, 4)), (0, 2))
    with pytest.raises(ValueError, match="2-D"):
        resize_to(np.zeros((4, 4, 3)), (2, 2))


def test_to_uint8():
    out = to_uint8(np.array([[-0.5, 0.0, 0.5, 1.0, 2.0]]))
    np.testing.assert_array_equal(out, [[0, 0, 128, 255, 255]])
    assert out.dtype == np.uint8
    with pytest.raises(ValueError, match="2-D"):
        to_uint8(np.zeros(3))
