"""No confident verdict on an image with no content: blank, one grey level, tiny, an almost empty frame."""
from __future__ import annotations

import numpy as np
import pytest

from cxrvlm.infer import Interpreter, render_html
from cxrvlm.infer.phantom import render_phantom
from cxrvlm.infer.quality import content_problems
from cxrvlm.io import read_image


@pytest.fixture(scope="module")
def interp(tiny_model) -> Interpreter:
    return Interpreter(tiny_model, name="tiny-test")


def _nearly_empty() -> np.ndarray:
    film = np.zeros((400, 400), np.float32)
    film[100:156, 100:157] = 1.0  # a label on a black frame: 2% of the pixels
    return film


@pytest.mark.parametrize("pixels, reason", [
    (np.zeros((512, 512), np.float32), "one flat grey level"),
    (np.full((300, 200), 0.5, np.float32), "one flat grey level"),
    (np.zeros((1, 1), np.float32), "1x1 pixels"),
    (np.linspace(0, 1, 40 * 900, dtype=np.float32).reshape(40, 900), "at least 64"),
    (_nearly_empty(), "one grey level: an (almost) empty frame"),
])
def test_images_with_nothing_to_read(pixels, reason):
    problems = content_problems(pixels)
    assert len(problems) == 1 and reason in problems[0]


def test_a_film_with_content_passes():
    assert content_problems(render_phantom(256)) == []


def test_no_verdict_only_the_reasons(interp: Interpreter):
    reading = interp.interpret(np.full((512, 512), 0.5, np.float32))
    assert reading["quality"]["assessable"] is False and "flat grey" in reading["quality"]["reasons"][0]
    assert reading["tb"] is None and reading["findings"] == [] and reading["report"] == ""
    assert reading["detections"] == reading["segmentations"] == reading["answers"] == []
    assert reading["warnings"][0].startswith("not assessable:") and "encode" not in reading["timing_ms"]
    assert "Not assessable" in render_html(reading)
    good = interp.interpret(render_phantom(128), tasks=["classify"])
    assert good["quality"] == {"assessable": True, "reasons": []} and good["tb"] is not None


def test_a_blank_prior_is_not_used(interp: Interpreter):
    reading = interp.interpret(render_phantom(128), tasks=["classify"], prior=np.zeros((128, 128), np.float32),
                               prior_days=10)
    assert reading["prior"] is None and reading["quality"]["assessable"]
    assert any(w.startswith("the prior was not used: the image is one flat grey level") for w in reading["warnings"])


@pytest.mark.realdata
def test_no_real_film_is_refused(shared_data):
    """Every 7th film of each source with images (a few hundred), frontal, lateral and non-chest alike: the rules
    refuse only images with no content (the full sweep of all 1,903 films refused none)."""
    paths = [p for folder in ("tb", "covid", "nih", "hannover", "vqa_rad")
             for p in sorted((shared_data / folder).rglob("*"))[::7]
             if p.suffix.lower() in (".png", ".jpg", ".jpeg") and "mask" not in str(p).lower()]
    assert len(paths) > 200
    refused = {str(p): content_problems(read_image(p).pixels) for p in paths}
    assert {p: r for p, r in refused.items() if r} == {}
