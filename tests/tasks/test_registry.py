"""The Task registry: every task registered once, asked for by name, in the order a reading lists its fields."""
from __future__ import annotations

import dataclasses

import pytest

from cxrvlm.examples import Example
from cxrvlm.tasks import (base, get_task, list_tasks, readable_tasks, reading_fields, register, screening_task,
                          segment)


def test_every_task_is_registered_once_and_complete():
    names = list_tasks()
    assert names == sorted(names) and len(names) >= 7
    for name in names:
        task = get_task(name)
        assert task.name == name and (task.max_new_tokens > 0 or task.by_head) and task.headline
        assert (task.read is None) == (not task.reading)  # a task that reads an image says which fields it fills


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid tasks: .*segment"):
        get_task("segmant")


def test_a_second_task_of_the_same_name_is_refused(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    with pytest.raises(ValueError, match="registered twice"):
        register(dataclasses.replace(segment.TASK, max_new_tokens=1))
    assert register(segment.TASK) is segment.TASK  # registering the same object again is harmless


def test_reading_order_and_fields():
    assert readable_tasks() == ["classify", "report", "detect", "segment", "vqa"]
    fields = reading_fields()
    assert list(fields) == ["verdict", "tb", "findings", "saliency", "report", "report_source", "consistency",
                            "detections", "segmentations", "answers"]
    assert fields["tb"] is None and fields["answers"] == []


def test_budget_grows_with_the_objects_asked_for():
    seg = get_task("segment")
    assert seg.budget(2) == seg.max_new_tokens == 160
    assert seg.budget(6) == 6 * seg.tokens_per_object + 8
    assert get_task("vqa").budget(9) == get_task("vqa").max_new_tokens


def test_screening_test_and_parse_hints():
    task = screening_task()
    tb = Example(task.name, ["a.png"], "q", "normal", "s", "p", "x", target={"kind": task.screening[0]})
    other = dataclasses.replace(tb, target={"kind": "finding", "labels": ["a"], "step": None})
    assert task.screening_case(tb) and not task.screening_case(other)
    assert get_task("detect").hints({"labels": ["right lung"], "size": [4, 4]}) == {"labels": ["right lung"]}
    assert get_task("findings_then_report").hints(other.target) == {}
