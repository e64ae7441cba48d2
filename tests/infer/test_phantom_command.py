"""`cxrvlm render-phantom`: the shipped example image is what the renderer draws; bad arguments are usage errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxrvlm import cli
from cxrvlm.infer.phantom import PHANTOM_PNG, render_phantom


def test_the_shipped_phantom_is_reproduced(tmp_path, capsys) -> None:
    out = tmp_path / "phantom.png"
    assert cli.main(["render-phantom", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(PHANTOM_PNG)))


def test_size_and_seed(tmp_path) -> None:
    out = tmp_path / "small.png"
    assert cli.main(["render-phantom", str(out), "--size", "96", "--seed", "3"]) == 0
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (96, 96) and pixels.dtype == np.uint8
    assert np.abs(pixels / 255.0 - render_phantom(96, 3)).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("argv, message", [(["x.png", "--size", "8"], "--size must be at least 64"),
                                           (["x.jpg"], "give a .png path")])
def test_bad_arguments(tmp_path, capsys, argv, message) -> None:
    assert cli.main(["render-phantom", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
