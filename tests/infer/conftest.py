"""Fixtures for the inference tests: one tiny random model per module, torch on one thread (the machine's two
cores are shared; one thread is also the fastest for a model this small)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from infer_fixtures import TINY


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model(one_thread: None) -> Any:
    import torch

    from cxrvlm.models import create_model

    torch.manual_seed(0)
    return create_model("cxrvlm-tiny", **TINY)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def phantom_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small non-square phantom PNG (120 x 96), so x and y scale differently."""
    from PIL import Image

    from cxrvlm.infer.phantom import render_phantom
    from cxrvlm.io import to_uint8

    path = tmp_path_factory.mktemp("images") / "phantom.png"
    pixels = render_phantom(128)[4:124, 16:112]
    Image.fromarray(to_uint8(pixels)).save(path)
    return path
