"""No confident verdict on an image with no content (blank, one grey level, tiny, an almost empty frame) or that the
view gate does not take for a frontal chest radiograph."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrvlm.infer import Interpreter, render_html
from cxrvlm.infer.phantom import render_phantom
from cxrvlm.infer.quality import assess, content_problems
from cxrvlm.io import read_image
from cxrvlm.models.view_gate import KINDS, ViewGate, ViewGateNet


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
    (np.zeros((1, 1), np.float32), "[1, 1] pixels ([height, width]"),
    (np.linspace(0, 1, 40 * 900, dtype=np.float32).reshape(40, 900), "[40, 900] pixels"),
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
    assert good["quality"] == {"assessable": True, "view": None, "reasons": []} and good["tb"] is not None


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


def _gate_for(kind: str) -> ViewGate:
    """A view gate that sees every image as `kind` (its last layer says so)."""
    torch.manual_seed(0)
    net = ViewGateNet(widths=(4, 8, 8, 8))
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([8.0 if k == kind else 0.0 for k in KINDS]))
    return ViewGate(net)


def test_the_view_gate_refuses_what_it_does_not_take_for_a_frontal_film(tiny_model):
    refused = Interpreter(tiny_model, name="tiny-test", view_gate=_gate_for("lateral")).interpret(
        render_phantom(128), tasks=["classify"])
    q = refused["quality"]
    assert q["assessable"] is False and q["view"] == "lateral" and "lateral chest view" in q["reasons"][0]
    assert q["view_probabilities"]["lateral"] > 0.99 and refused["tb"] is None and "encode" not in refused["timing_ms"]
    taken = Interpreter(tiny_model, name="tiny-test", view_gate=_gate_for("frontal")).interpret(
        render_phantom(128), tasks=["classify"])
    assert taken["quality"]["assessable"] and taken["quality"]["view"] == "frontal" and taken["tb"] is not None
    assert assess(np.zeros((128, 128), np.float32), _gate_for("frontal"))["view"] is None  # the rules come first


class _BrightIsInverted(ViewGate):
    """Takes a film whose mean grey is under 0.5 for frontal, a brighter one for inverted."""

    def __init__(self) -> None:
        super().__init__(ViewGateNet(widths=(4, 4, 4, 4)))

    def probabilities(self, pixels: np.ndarray) -> dict[str, float]:
        inverted = float(np.mean(pixels) > 0.5)
        return {k: inverted if k == "inverted" else (1.0 - inverted if k == "frontal" else 0.0) for k in KINDS}


def test_a_prior_the_gate_refuses_is_not_used(tiny_model):
    film = render_phantom(128)
    assert film.mean() < 0.5 < (1.0 - film).mean()
    interp = Interpreter(tiny_model, name="tiny-test", view_gate=_BrightIsInverted())
    reading = interp.interpret(film, tasks=["classify"], prior=1.0 - film, prior_days=10)
    assert reading["quality"]["assessable"] and reading["prior"] is None
    assert any(w.startswith("the prior was not used: the grey levels look inverted") for w in reading["warnings"])


@pytest.mark.realdata
def test_the_shipped_gate_on_real_films(shared_data):
    """Lateral views and head films are refused, frontal films of every source taken (the held-out rates are the
    training run's; this checks a few files end to end through the reader)."""
    gate = ViewGate.default()
    laterals = [shared_data / "covid" / "images" / r.split(",")[0]
                for r in (shared_data / "covid" / "metadata.csv").read_text().splitlines()[1:] if ",L," in r][:6]
    frontals = [min((shared_data / folder).rglob("*.png")) for folder in ("tb/images", "nih", "hannover")
                if any((shared_data / folder).rglob("*.png"))]
    masks = sorted((shared_data / "tb" / "masks").glob("*.png"))[:3]
    assert laterals and frontals and masks
    assert sum(bool(gate.problems(read_image(p).pixels)) for p in laterals) >= len(laterals) - 1
    assert all(gate.problems(read_image(p).pixels) for p in masks)
    assert not [p for p in frontals if gate.problems(read_image(p).pixels)]
    assert gate.info["held_out"]["negatives_passed"] <= 0.02 and gate.info["held_out"]["frontal_rejected"] <= 0.01
