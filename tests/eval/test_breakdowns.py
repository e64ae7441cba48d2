"""Evaluation broken down: every metric per source (the same metric over each source's examples, the TB test at
the split's one operating point), films with another disease read as TB, close-ended answers per question type
against the training split's majority answer."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_runner import Oracle

from cxrvlm.data.split import read_split
from cxrvlm.eval.answer_types import by_type, majority_answers, train_baseline
from cxrvlm.eval.breakdown import tables
from cxrvlm.eval.by_source import example_source, source_key
from cxrvlm.eval.other_disease import cases
from cxrvlm.eval.report import metrics_document
from cxrvlm.eval.runner import EvalOptions, evaluate
from cxrvlm.jsonl import clean
from cxrvlm.tasks import get_task, screening_task

OPTIONS = EvalOptions(batch_size=4, progress=False, fast_metrics=True, threshold=0.5)


def test_source_key_refines_a_source_by_dataset_then_patient_namespace() -> None:
    assert source_key("tb", "shenzhen:CHNCXR_0002") == "tb/shenzhen"
    assert source_key("tb", "da_db:p1") == "tb/da_db"
    assert source_key("tb", "montgomery:MCUCXR_0004", {"dataset": "montgomery"}) == "tb/montgomery"
    assert source_key("tb", "x:1", {"dataset": "da_db"}) == "tb/da_db"  # what curation recorded wins
    assert source_key("covid", "covid:patient7") == "covid"
    assert source_key("covid", "p7") == "covid"


def _two_hospitals(examples):
    """The fixture's TB films split between two datasets of the tb source (by patient namespace)."""
    out = []
    for e in examples:
        if e.source == "tb":
            hospital = "shenzhen" if int(e.study_id.split(":")[1]) % 4 < 2 else "da_db"
            e = dataclasses.replace(e, patient_id=f"{hospital}:{e.patient_id}")
        out.append(e)
    return out


def test_metrics_per_source_are_the_task_metric_over_that_source_alone(curated: Path) -> None:
    examples = _two_hospitals(read_split(curated, "test"))
    oracle = Oracle(examples, lambda e: e.suffix)
    oracle.truth[next(k for k in oracle.truth if k[1] == screening_prompt(examples))] = "normal"  # one TB miss
    whole = evaluate(oracle, examples, OPTIONS)
    keys = {example_source(e) for e in examples}
    assert keys == {"tb/shenzhen", "tb/da_db", "covid"}
    for key in keys:
        alone = evaluate(oracle, [e for e in examples if example_source(e) == key], OPTIONS)
        for task, r in alone.tasks.items():
            got = whole.tasks[task].by_source[key]
            assert got["n"] == r.n
            assert got["metrics"] == pytest.approx(metrics_document(alone, {}, None)["tasks"][task]["metrics"],
                                                   nan_ok=True), (task, key)
            assert r.by_source == {key: {"n": r.n, "metrics": clean(r.metrics)}}  # one source: the overall metric
    assert set(whole.tasks["classify"].by_source) == keys


def test_other_disease_films_are_asked_the_tb_question_once_per_study(curated: Path) -> None:
    examples = read_split(curated, "test")
    found = cases(examples + examples)
    diseased = {e.study_id for e in examples if e.target.get("kind") == "finding"
                and e.target["label"] not in ("no finding", "tuberculosis")}
    assert diseased and sorted(c.study_id for c in found) == sorted(diseased)
    tb_question = next(e.prefix for e in examples if screening_task().screening_case(e))
    assert all(c.prefix == tb_question and c.target["candidates"] == ["normal", "tuberculosis"] for c in found)
    assert not any(screening_task().screening_case(c) for c in found)  # never a case of the TB test itself


@pytest.mark.parametrize("says, rate", [("normal", 0.0), ("tuberculosis", 1.0)])
def test_read_as_tb_rate_follows_the_models_tb_probability(curated: Path, says: str, rate: float) -> None:
    examples = read_split(curated, "test")
    oracle = Oracle(examples, lambda e: e.suffix)
    oracle.truth |= {(k, screening_prompt(examples)): says for k, _ in list(oracle.truth)}
    result = evaluate(oracle, examples, OPTIONS)
    od = result.other_disease
    assert od["n"] == len(cases(examples)) > 0 and od["rate"] == rate
    assert od["by_source"] == {"covid": {"n": od["n"], "n_read_as_positive": od["n_read_as_positive"],
                                         "rate": rate, "mean_probability": pytest.approx(0.1 + 0.8 * rate)}}
    assert len(result.other_disease_records) == od["n"]
    assert all(r["prediction"]["label"] == says for r in result.other_disease_records)
    # the extra question feeds no task metric (and the label head's task is left out: this model has none)
    assert len(result.records) == sum(not get_task(e.task).by_head for e in examples)
    doc = metrics_document(result, {"split": "test"}, None)
    assert doc["tasks"]["classify"]["other_disease"]["rate"] == rate
    assert any(t.title.startswith("Films with another disease") for t in tables("classify", doc["tasks"]["classify"]))


def screening_prompt(examples) -> str:
    return next(e.prefix for e in examples if screening_task().screening_case(e))


def test_majority_baseline_comes_from_the_given_split_and_flags_constant_answers(curated: Path) -> None:
    train = read_split(curated, "train")
    majority = majority_answers((e.task, e.target) for e in train)
    views = [e for e in train if e.target.get("template") == "normal"]
    assert majority["vqa"]["normal"]["n"] == len(views)
    test = read_split(curated, "test")
    oracle = Oracle(test, lambda e: e.suffix)
    oracle.truth = {k: ("yes" if v in ("yes", "no") else v) for k, v in oracle.truth.items()}  # always "yes"
    result = evaluate(oracle, test, OPTIONS)
    typed = by_type(result.records, majority, "train")["vqa"]
    normal = typed["types"]["normal"]
    truth = [e.target["answer"] for e in test if e.target.get("template") == "normal"]
    assert normal["n"] == len(truth) and normal["predicted"] == {"yes": len(truth)}
    assert normal["accuracy"] == pytest.approx(truth.count("yes") / len(truth))
    assert normal["per_answer"] == {a: float(a == "yes") for a in set(truth)}  # right on every "yes", no other
    assert normal["baseline_answer"] == majority["vqa"]["normal"]["answer"]
    assert normal["baseline_accuracy"] == pytest.approx(truth.count(normal["baseline_answer"]) / len(truth))
    assert ("normal" in typed["flagged"]) == (normal["accuracy"] <= normal["baseline_accuracy"])
    assert typed["baseline_split"] == "train"


def test_an_oracle_beats_every_majority_baseline_it_can(curated: Path) -> None:
    test = read_split(curated, "test")
    result = evaluate(Oracle(test, lambda e: e.suffix), test, OPTIONS)
    typed = by_type(result.records, majority_answers((e.task, e.target) for e in test), "test")["vqa"]
    for kind, row in typed["types"].items():
        assert row["accuracy"] == 1.0 and row["predicted"] == row["truth"], kind
        assert set(row["per_answer"]) == set(row["truth"]) and set(row["per_answer"].values()) == {1.0}, kind
        assert (kind in typed["flagged"]) == (row["baseline_accuracy"] == 1.0), kind


def test_without_a_train_split_the_baseline_is_the_evaluated_split_and_says_so(curated: Path,
                                                                              tmp_path: Path) -> None:
    assert train_baseline(tmp_path) is None
    assert train_baseline(curated)[0] == "train"
    test = read_split(curated, "test")
    result = evaluate(Oracle(test, lambda e: e.suffix), [e for e in test if e.task == "vqa"], OPTIONS)
    typed = metrics_document(result, {"split": "test"}, None)["tasks"]["vqa"]["by_type"]
    assert typed["baseline_split"].startswith("test (evaluated split")
    expected = majority_answers((e.task, e.target) for e in test)["vqa"]
    assert {k: t["baseline_answer"] for k, t in typed["types"].items()} == {k: v["answer"] for k, v in expected.items()}
