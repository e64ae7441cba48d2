"""Bad input: every failure is an ImageReadError (a ValueError) naming the file and the reason."""
from __future__ import annotations

import numpy as np
import pytest
from fixtures_images import gradient, truncate, write_bomb_png, write_jpeg, write_png, write_tiff
from PIL import Image

from cxrvlm.io import ImageReadError, probe_image, read_image


def _error(path, **kwargs) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and info.value.path == str(path)
    assert isinstance(info.value, ValueError)
    return message


def test_missing_file(tmp_path):
    assert "file not found" in _error(tmp_path / "nope.png")


def test_directory(tmp_path):
    assert "not a regular file" in _error(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty (0 bytes)" in _error(path)


def test_text_with_png_extension(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("patient_id,label\n1,TB\n")
    message = _error(path)
    assert "not an image" in message and "text" in message


def test_binary_garbage(tmp_path):
    path = tmp_path / "blob.jpg"
    path.write_bytes(bytes(range(7, 200)))
    assert "not an image" in _error(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_png(tmp_path, keep):
    arr = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)  # noise: the IDAT is large
    path = truncate(write_png(tmp_path / "cut.png", arr), keep)
    assert "truncated or corrupt PNG" in _error(path)


def test_png_with_broken_header(tmp_path):
    path = write_png(tmp_path / "bad.png", gradient(8, 8))
    data = bytearray(path.read_bytes())
    data[12:16] = b"XXXX"  # IHDR chunk name destroyed
    path.write_bytes(bytes(data))
    assert "PNG" in _error(path)


def test_truncated_jpeg(tmp_path):
    arr = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
    path = truncate(write_jpeg(tmp_path / "cut.jpg", arr), 0.5)
    assert "truncated or corrupt JPEG" in _error(path)


def test_truncated_tiff(tmp_path):
    path = truncate(write_tiff(tmp_path / "cut.tif", gradient(64, 64, maxval=60000, dtype=np.uint16)), 0.5)
    assert "TIFF" in _error(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    path = write_png(tmp_path / "a.png", gradient(40, 50))
    message = _error(path, max_pixels=1999)
    assert "40 x 50 = 2,000 pixels" in message and "limit of 1,999" in message
    assert read_image(path, max_pixels=2000).pixels.shape == (40, 50)
    with pytest.raises(ImageReadError, match="limit"):
        probe_image(path, max_pixels=1999)


def test_bomb_png_refused_by_default(tmp_path):
    path = write_bomb_png(tmp_path / "bomb.png", 10_000, 8_000)  # 80 M pixels in a few kB
    assert path.stat().st_size < 100_000
    assert "decompression bomb" in _error(path)


def test_bomb_beyond_pillow_limit_is_refused_by_pillow(tmp_path):
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 100  # past Pillow's own hard limit
    path = write_bomb_png(tmp_path / "huge.png", side, side)
    assert "decompression bomb" in _error(path, max_pixels=10**12)


def test_bomb_between_pillow_warning_and_error_is_refused(tmp_path):
    side = int(Image.MAX_IMAGE_PIXELS**0.5) + 100  # Pillow only warns here; the warning must not pass silently
    path = write_bomb_png(tmp_path / "big.png", side, side)
    assert "decompression bomb" in _error(path, max_pixels=10**12)


def test_unsupported_mode(tmp_path):
    path = tmp_path / "lab.tif"
    Image.new("LAB", (8, 8)).save(path)
    assert "unsupported Pillow image mode 'LAB'" in _error(path)


def test_multipage_tiff_refused(tmp_path):
    path = tmp_path / "pages.tif"
    pages = [Image.fromarray(gradient(8, 8)), Image.fromarray(gradient(8, 8)[::-1])]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert "2 frames/pages" in _error(path)


def test_bad_max_pixels(tmp_path):
    path = write_png(tmp_path / "a.png", gradient(4, 4))
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="max_pixels"):
            read_image(path, max_pixels=bad)


@pytest.mark.parametrize("head", [b"\xff\xd8\xff\xe0\x00", b"\xff\xd8\xff", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00"])
def test_jpeg_header_only_is_a_clear_error(tmp_path, head):
    # issue 17 row 3: a 5-byte ".jpg" starting like a JPEG raised KeyError('MPO') (an HTTP 500 in the server)
    path = tmp_path / "five.jpg"
    path.write_bytes(head)
    assert "corrupt JPEG" in _error(path)


def test_mpo_jpeg_reads_its_first_frame(tmp_path):
    frame = Image.fromarray(gradient(16, 12))
    path = tmp_path / "stereo.jpg"
    frame.save(path, format="MPO", save_all=True, append_images=[frame.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    image = read_image(path)
    assert image.pixels.shape == (16, 12) and image.meta.format == "jpeg"
