"""Pictures written for JSON and web pages, in one place: PNG bytes and base64 PNG text.

    png_base64(Image.fromarray(cells))         # "iVBORw0..." for a JSON field or a data: URL
    data = png_bytes(picture); png_base64(data)  # encoded once, used for a file and a page
"""
from __future__ import annotations

import base64
import io

from PIL import Image


def png_bytes(picture: Image.Image, optimize: bool = True) -> bytes:
    """A picture as PNG bytes; `optimize` makes it a tenth smaller and several times slower to write."""
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=optimize)
    return buf.getvalue()


def png_base64(picture: Image.Image | bytes, optimize: bool = True) -> str:
    """A picture (or its PNG bytes, encoded once elsewhere) as base64 PNG text."""
    data = picture if isinstance(picture, bytes) else png_bytes(picture, optimize)
    return base64.b64encode(data).decode("ascii")
