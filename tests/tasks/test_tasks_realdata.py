"""Every task over the real `tb` and `covid` folders: each study formats without error, every task has examples,
and each example's answer parses back to its target."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from cxrvlm.tasks import classify, detect, findings_then_report, ground, report, vqa
from cxrvlm.examples import Example, Prediction

TASKS = (classify, vqa, report, detect, ground, findings_then_report)
pytestmark = pytest.mark.realdata


def _parse_reference(ex: Example) -> Prediction:
    t = ex.target
    if ex.task == "classify":
        return classify.parse(ex.suffix, candidates=t["candidates"])
    if ex.task == "vqa":
        return vqa.parse(ex.suffix, candidates=t["candidates"] or None)
    if ex.task == "detect":
        return detect.parse(ex.suffix, labels=t["labels"])
    if ex.task == "findings_then_report":
        return findings_then_report.parse(ex.suffix, step=t["step"], candidates=t.get("candidates"))
    return {"report": report, "ground": ground}[ex.task].parse(ex.suffix)


def _format_source(name: str, root) -> tuple[Counter, Counter]:
    base = pytest.importorskip("cxrvlm.sources.base")
    try:
        source = base.open_source(name, root / name)
    except ValueError as e:
        pytest.skip(f"source {name!r} is not available: {e}")
    counts, meta = Counter(), Counter()
    for study in source:
        for task in TASKS:
            for ex in task.format(study, random.Random(study.study_id)):
                assert ex.images and all(isinstance(p, str) for p in ex.images)
                assert Example.from_json(json.loads(json.dumps(ex.to_json()))) == ex
                pred = _parse_reference(ex)
                assert pred.valid, (ex.task, ex.suffix[:200], pred.reason)
                counts[task.NAME] += 1
                meta[(task.NAME, ex.meta.get("inputs") or ex.target.get("template") or ex.target.get("kind"))] += 1
    return counts, meta


def test_tb_and_covid_give_every_task(shared_data):
    tb, tb_meta = _format_source("tb", shared_data)
    covid, covid_meta = _format_source("covid", shared_data)
    assert tb["classify"] == 2 * 358 and tb["report"] == 358  # tb + finding per image; one templated report
    assert all((tb + covid)[t.NAME] > 0 for t in TASKS), tb + covid
    for kind in ("multi_view", "multi_study"):
        assert covid_meta[("report", kind)] > 0
    for template in ("view", "lung_size", "extent", "change", "label", "choice"):
        assert covid_meta[("vqa", template)] > 0, template
