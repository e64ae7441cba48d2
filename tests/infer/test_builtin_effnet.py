"""The shipped cxrvlm-effnet: it loads from the package alone, carries the label head over the whole label space,
and its reading takes the TB probability and the findings from that head."""
from __future__ import annotations

import pytest

import cxrvlm
from cxrvlm.infer.phantom import render_phantom
from cxrvlm.tasks import labels


@pytest.fixture(scope="module")
def interp(one_thread):
    return cxrvlm.load("cxrvlm-effnet")


def test_shipped_head_reads_the_tb_probability(interp) -> None:
    model = interp.model
    assert model.label_names == list(labels.LABEL_SPACE) and not model.config.efficientnet_pretrained
    film = render_phantom(256)
    reading = interp.interpret(film, tasks=["classify"])
    head = model.label_probs(images=[[film]])[0]
    assert reading["tb"]["probability"] == pytest.approx(head["Tuberculosis"], abs=5e-3)
    assert reading["tb"]["threshold_source"] == "operating_point.json"
    assert {f["label"] for f in reading["findings"]} == {n.lower() for n in labels.LABEL_SPACE[1:]}
