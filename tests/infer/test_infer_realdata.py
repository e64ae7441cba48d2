"""The interpreter on real files of ../shared/data (skipped where it is absent): sizes, a prior, the overlay.
The tiny model is untrained, so only the mechanics are checked, not the reading."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cxrvlm.infer import Interpreter, check_reading
from cxrvlm.infer.overlay import render_overlay

pytestmark = pytest.mark.realdata


def test_real_tb_png_and_covid_study_with_prior(shared_data: Path, tiny_model: Any) -> None:
    interp = Interpreter(tiny_model)
    tb = sorted((shared_data / "tb" / "images").glob("*.png"))[0]
    reading, pixels = interp.interpret_with_pixels(str(tb), tasks=["classify", "detect"])
    assert check_reading(reading) == [] and reading["image_size"] == list(pixels.shape)
    with Image.open(tb) as im:
        assert reading["image_size"] == [im.height, im.width]
    rows = list(csv.DictReader(open(shared_data / "covid" / "metadata.csv", newline="")))
    by_patient: dict[str, list[dict]] = {}
    for r in rows:
        if r["view"] in ("PA", "AP") and r["offset"].strip():
            by_patient.setdefault(r["patientid"], []).append(r)
    studies = next(sorted(v, key=lambda r: float(r["offset"])) for v in by_patient.values()
                   if len({r["offset"] for r in v}) > 1)  # a patient imaged on two different days
    first, later = studies[0], studies[-1]
    days = float(later["offset"]) - float(first["offset"])
    images = shared_data / "covid" / "images"
    reading, pixels = interp.interpret_with_pixels(str(images / later["image_id"]), tasks=["report", "segment"],
                                                   prior=str(images / first["image_id"]), prior_days=days)
    assert check_reading(reading) == [] and reading["prior"] == str(images / first["image_id"])
    assert reading["image_size"] == [int(later["height"]), int(later["width"])]
    overlay = render_overlay(pixels, reading)
    assert max(overlay.size) >= 512
