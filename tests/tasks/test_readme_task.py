"""The README's "Adding a task" example, run as written: one module registers a task that curation, evaluation
and the registry then know, with no other file changed."""
from __future__ import annotations

import random
import re
import sys
import types
from pathlib import Path

import pytest

from cxrvlm.eval import predict
from cxrvlm.eval.report import main_metric
from cxrvlm.examples import Prediction
from cxrvlm.records import Study, View
from cxrvlm.tasks import base, get_task, list_tasks

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def view_task(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The README's module, imported as cxrvlm.tasks.view; the registry is restored afterwards."""
    section = README.read_text().split("### Adding a task", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    module = types.ModuleType("cxrvlm.tasks.view")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, "README.md", "exec"), module.__dict__)  # noqa: S102 - the README's own example
    return module


def _study() -> Study:
    views = [View("f", path="/f.png", view_position="PA"), View("l", path="/l.png", view_position="LATERAL"),
             View("u", path="/u.png")]
    return Study("s1", "p1", "test", "CC0", views=views)


def test_the_example_registers_and_formats(view_task):
    assert "view" in list_tasks() and get_task("view") is view_task.TASK
    examples = view_task.format(_study(), random.Random(0))
    assert [(e.images, e.suffix) for e in examples] == [(["/f.png"], "frontal"), (["/l.png"], "lateral")]
    assert predict.candidates_of(examples[1]) == ["frontal", "lateral"]
    assert get_task("view").budget() == 4


def test_the_example_parses_and_scores(view_task):
    assert view_task.parse(" Lateral. ").label == "lateral"
    assert not view_task.parse("<loc0001> maybe").valid
    m = view_task.metric(fast=True)
    for label, p in (("lateral", 0.9), ("frontal", 0.2), ("lateral", 0.7), ("frontal", 0.4)):
        guess = "lateral" if p >= 0.5 else "frontal"
        m.update(Prediction("view", label=guess, extra={"probs": {"lateral": p, "frontal": 1 - p}}), {"label": label})
    assert main_metric("view", m.compute()) == {"key": "auroc", "value": 1.0, "ci_low": pytest.approx(1.0),
                                                "ci_high": pytest.approx(1.0)}
