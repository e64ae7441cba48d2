"""The image-level label task: which labels a study settles, its one example per film, and its per-label metric."""
from __future__ import annotations

import math
import random

from task_studies import covid_study, tb_study

from cxrvlm.records import Study, View
from cxrvlm.tasks import get_task, labels


def _nih(**positives: float) -> Study:
    names = {k: 0.0 for k in labels.NIH_FINDINGS} | {"Pneumonia": 0.0, "No Finding": 0.0} | positives
    return Study("nih:1", "n1", "nih", "CC0", views=[View("n1", path="/data/nih/n1.png")], labels=names)


def test_a_normal_film_is_negative_for_every_label() -> None:
    settled = labels.settled_labels(tb_study(positive=False))
    assert settled == {k: float(k == "No Finding") for k in labels.LABEL_SPACE}


def test_tb_film_settles_tb_and_no_finding_only() -> None:
    assert labels.settled_labels(tb_study(positive=True)) == {"Tuberculosis": 1.0, "No Finding": 0.0}


def test_a_pneumonia_is_tb_negative_and_implies_its_parents() -> None:
    settled = labels.settled_labels(covid_study())
    assert settled["Tuberculosis"] == 0.0 and settled["No Finding"] == 0.0
    assert settled["COVID-19"] == settled["Viral Pneumonia"] == settled["Pneumonia"] == 1.0
    assert settled["Bacterial Pneumonia"] == 0.0 and "Cardiomegaly" not in settled  # not annotated: masked


def test_nih_film_settles_its_findings_but_tb_only_with_a_pneumonia() -> None:
    effusion = labels.settled_labels(_nih(**{"Pleural Effusion": 1.0}))
    assert effusion["Pleural Effusion"] == 1.0 and effusion["Cardiomegaly"] == 0.0
    assert "Tuberculosis" not in effusion  # an effusion may be TB: left unknown
    assert labels.settled_labels(_nih(Pneumonia=1.0))["Tuberculosis"] == 0.0


def test_one_example_on_the_frontal_view_with_settled_labels_only() -> None:
    task = get_task(labels.NAME)
    [ex] = task.format(covid_study(), random.Random(0))
    assert ex.images == ["/data/covid/f.png"] and ex.prefix == ex.suffix == ""
    assert ex.target["labels"] == labels.settled_labels(covid_study())
    assert task.by_head and not task.parse("anything").valid
    no_labels = Study("x:1", "x", "vqa_rad", "CC0", views=[View("v", path="/v.png")])
    assert task.format(no_labels, random.Random(0)) == []


def test_label_vector_masks_what_a_film_does_not_settle() -> None:
    y, m = labels.label_vector({"Tuberculosis": 1.0, "No Finding": 0.0}, labels.LABEL_SPACE)
    assert y[:2] == [1.0, 0.0] and m[:2] == [1.0, 1.0] and sum(m) == 2


def test_metric_gives_per_label_auroc_and_a_macro_over_well_counted_labels() -> None:
    metric = labels.LabelsMetric(min_positives=2)
    # TB: perfectly ranked, 2 positives; Edema: one positive, kept out of the macro; COVID-19: no negative
    rows = [({"Tuberculosis": 1.0, "Edema": 0.0, "COVID-19": 1.0}, {"Tuberculosis": 0.9, "Edema": 0.8}),
            ({"Tuberculosis": 1.0, "Edema": 1.0, "COVID-19": 1.0}, {"Tuberculosis": 0.8, "Edema": 0.1}),
            ({"Tuberculosis": 0.0, "Edema": 0.0}, {"Tuberculosis": 0.2, "Edema": 0.5})]
    for target, probs in rows:
        metric.update(labels.head_prediction({**dict.fromkeys(labels.LABEL_SPACE, 0.5), **probs}),
                      {"labels": target})
    metric.update(labels.parse("text"), {"labels": {"Tuberculosis": 1.0}})
    out = metric.compute()
    assert out["labels_auroc_tuberculosis"] == 1.0 and out["labels_n_pos_tuberculosis"] == 2
    assert out["labels_auroc_edema"] == 0.0 and out["labels_macro_auroc"] == 1.0
    assert "labels_auroc_covid-19" not in out and out["labels_invalid"] == 1
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())


def test_classification_reads_tb_from_the_head_and_leaves_the_finding_question_to_the_decoder() -> None:
    task = get_task("classify")
    tb_case, finding = task.format(tb_study(positive=True), random.Random(0))
    assert task.from_head(tb_case, {"Tuberculosis": 0.25}) == {"normal": 0.75, "tuberculosis": 0.25}
    assert task.from_head(finding, {"Tuberculosis": 0.25}) is None
    assert task.from_head(tb_case, {"Tuberculosis": float("nan")}) is None


def test_called_labels_use_the_operating_point_for_tb_and_imply_broader_diagnoses() -> None:
    head = {name: 0.1 for name in labels.LABEL_SPACE} | {"Tuberculosis": 0.3, "COVID-19": 0.7, "No Finding": 0.9}
    assert labels.called(head, tb_threshold=0.25) == ["Tuberculosis", "COVID-19", "Viral Pneumonia", "Pneumonia"]
    assert labels.called(head) == ["COVID-19", "Viral Pneumonia", "Pneumonia"]  # TB at PRESENT_AT without one
    quiet = {name: 0.1 for name in labels.LABEL_SPACE} | {"No Finding": 0.8}
    assert labels.called(quiet, tb_threshold=0.5) == ["No Finding"]  # only when nothing else is called
    assert labels.called(quiet | {"No Finding": 0.2}) == []
