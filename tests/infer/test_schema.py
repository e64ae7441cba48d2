"""The reading's schema: what it refuses, and that the API publishes it."""
from __future__ import annotations

import copy

import numpy as np

from cxrvlm.infer import Interpreter, check_reading
from cxrvlm.infer.phantom import render_phantom


def test_a_reading_passes_and_each_broken_field_is_named(tiny_model) -> None:
    reading = Interpreter(tiny_model, name="tiny").interpret(render_phantom(128), tasks=["classify", "detect"])
    assert check_reading(reading) == []
    broken = copy.deepcopy(reading)
    broken["tb"]["probability"] = 1.5
    broken["image_size"] = [128]
    broken["quality"]["assessable"] = "yes"
    broken["extra_field"] = 1
    problems = check_reading(broken)
    assert any(p.startswith("tb.probability") for p in problems)
    assert any(p.startswith("image_size") for p in problems)
    assert any(p.startswith("quality.assessable") for p in problems)
    assert any(p.startswith("extra_field") for p in problems)
    assert check_reading({"image": "x"})[0] == "missing key 'model'"
    assert check_reading(Interpreter(tiny_model).interpret(np.zeros((80, 80), np.float32))) == []  # not assessable


def test_a_failed_input_is_checked_as_one() -> None:
    assert check_reading({"image": "a.png", "error": "a.png: not an image"}) == []
    assert check_reading({"image": "a.png", "error": 3, "tb": None}) == [
        "error: Input should be a valid string", "tb: Extra inputs are not permitted"]
