"""Adapters for the public dataset layouts users download, each run on a tiny fixture written in that layout."""
from __future__ import annotations

import math
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from cxrvlm.records import LABELS, load_mask
from cxrvlm.sources.base import list_sources, open_source
from cxrvlm.tasks import get_task

try:
    import layouts
except ImportError:  # tests/ collected as a package
    from . import layouts

EXTERNAL = ("shenzhen_montgomery", "tbx11k", "vindr", "nih", "iu_xray", "mimic_cxr", "vqa_rad", "slake")


def _by_id(source) -> dict:
    return {s.study_id: s for s in source}


def _skipped(source, item_part: str, reason_part: str) -> bool:
    return any(item_part in item and reason_part in reason for item, reason in source.skipped)


def _known(labels: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in labels.items() if not math.isnan(v)}


def test_every_external_source_is_registered_with_licence_and_citation():
    names = list_sources()
    for name in EXTERNAL:
        assert name in names
    for name in EXTERNAL:
        module = __import__(f"cxrvlm.sources.{name}", fromlist=["_"])
        cls = next(v for v in vars(module).values() if getattr(v, "name", None) == name)
        assert cls.licence and cls.citation
        assert "Licence" in module.__doc__ and "Citation" in module.__doc__


@pytest.mark.parametrize("name", EXTERNAL)
def test_missing_layout_is_a_clear_error(tmp_path: Path, name: str):
    with pytest.raises(ValueError, match=name):
        list(open_source(name, tmp_path))


def test_shenzhen_montgomery(tmp_path: Path):
    layouts.shenzhen_montgomery(tmp_path)
    source = open_source("shenzhen_montgomery", tmp_path)
    studies = _by_id(source)
    assert set(studies) == {f"shenzhen_montgomery:{s}" for s in ("CHNCXR_0001_0", "CHNCXR_0002_1", "MCUCXR_0001_1")}

    normal = studies["shenzhen_montgomery:CHNCXR_0001_0"]
    assert normal.patient_id == "shenzhen:CHNCXR_0001"
    assert normal.labels == {"Tuberculosis": 0.0, "No Finding": 1.0}
    assert (normal.report.findings, normal.report.kind) == ("normal", "case_notes")
    assert (normal.meta["sex"], normal.meta["age"]) == ("M", 45)
    assert normal.views[0].size == (32, 40) and normal.views[0].view_position is None  # Shenzhen: "frontal"
    assert load_mask(normal.views[0].masks["lungs"], (32, 40)).all()

    tb = studies["shenzhen_montgomery:CHNCXR_0002_1"]
    assert tb.labels == {"Tuberculosis": 1.0, "No Finding": 0.0}
    assert (tb.meta["sex"], tb.meta["age"], tb.report.findings) == ("F", 29, "PTB in the right upper field")
    assert tb.views[0].masks == {}  # its mask has the wrong size

    mont = studies["shenzhen_montgomery:MCUCXR_0001_1"]
    assert mont.patient_id == "montgomery:MCUCXR_0001"
    assert (mont.meta["sex"], mont.meta["age"], mont.report.findings) == ("F", 40, "right upper lobe cavity")
    view = mont.views[0]
    assert view.view_position == "PA"
    on_right, on_left = layouts.lung_masks()
    assert np.array_equal(load_mask(view.masks["left lung"]), on_right)  # patient's left = image's right
    assert np.array_equal(load_mask(view.masks["right lung"]), on_left)
    assert np.array_equal(load_mask(view.masks["lungs"]), on_right | on_left)
    boxes = {b.label: b.as_tuple() for b in view.boxes}
    assert boxes["left lung"] == pytest.approx((24 / 40, 4 / 32, 36 / 40, 28 / 32))
    assert boxes["right lung"] == pytest.approx((4 / 40, 6 / 32, 16 / 40, 26 / 32))

    assert _skipped(source, "MCUCXR_extra.png", "file name")
    assert _skipped(source, "CHNCXR_0002_1_mask.png", "size")


def test_montgomery_masks_on_one_side_are_refused(tmp_path: Path):
    on_right, _ = layouts.lung_masks()
    mont = tmp_path / "MontgomerySet"
    layouts.png(mont / "CXR_png" / "MCUCXR_0005_0.png")
    for side in ("leftMask", "rightMask"):
        layouts.png(mont / "ManualMask" / side / "MCUCXR_0005_0.png", mask=on_right)
    source = open_source("shenzhen_montgomery", mont)
    (study,) = list(source)
    assert study.views[0].masks == {} and study.report is None
    assert _skipped(source, "MCUCXR_0005_0.png", "same side")


def test_tbx11k(tmp_path: Path):
    layouts.tbx11k(tmp_path)
    source = open_source("tbx11k", tmp_path / "TBX11K")
    studies = _by_id(source)
    assert set(studies) == {"tbx11k:h0001", "tbx11k:s0001", "tbx11k:tb0001", "tbx11k:tb0002"}  # not imgs/test

    healthy, sick = studies["tbx11k:h0001"], studies["tbx11k:s0001"]
    assert healthy.labels == {"Tuberculosis": 0.0, "No Finding": 1.0} and healthy.meta["category"] == "healthy"
    assert sick.labels == {"Tuberculosis": 0.0, "No Finding": 0.0} and sick.meta["category"] == "sick_non_tb"
    assert (healthy.meta["split"], sick.meta["split"]) == ("train", "val")
    assert healthy.meta["boxes_annotated"] and healthy.views[0].boxes == []

    tb = studies["tbx11k:tb0001"]
    assert tb.labels["Tuberculosis"] == 1.0 and tb.patient_id == "tbx11k:tb0001"
    boxes = sorted((b.label, b.as_tuple()) for b in tb.views[0].boxes)  # the trainval copy is not repeated
    assert boxes == [("active tuberculosis", pytest.approx((8 / 64, 16 / 64, 24 / 64, 24 / 64))),
                     ("latent tuberculosis", pytest.approx((40 / 64, 8 / 64, 48 / 64, 16 / 64)))]
    assert tb.meta["tb_types"] == ["active tuberculosis", "latent tuberculosis"]
    unannotated = studies["tbx11k:tb0002"]
    assert unannotated.labels["Tuberculosis"] == 1.0 and unannotated.meta["boxes_annotated"] is False
    assert unannotated.views[0].size == (64, 64)
    assert _skipped(source, "annotation 3", "unknown category")


def test_vindr(tmp_path: Path):
    layouts.vindr(tmp_path)
    source = open_source("vindr", tmp_path)
    studies = _by_id(source)
    assert set(studies) == {"vindr:img_a", "vindr:img_b", "vindr:img_c"}

    a = studies["vindr:img_a"]
    view = a.views[0]
    assert view.size == (200, 100) and view.view_position == "PA" and a.meta["readers"] == 3
    boxes = sorted((b.label, b.as_tuple()) for b in view.boxes)
    assert boxes == [("cardiomegaly", pytest.approx((0.25, 0.5, 0.75, 0.75))),
                     ("nodule or mass", pytest.approx((0.1, 0.1, 0.2, 0.2)))]
    # A label is positive when any reader marked it; Tuberculosis came from one reader's global label.
    assert a.labels["Cardiomegaly"] == 1.0 and a.labels["Lung Lesion"] == 1.0 and a.labels["Tuberculosis"] == 1.0
    assert a.labels["Rib Fracture"] == 0.0 and a.labels["Fracture"] == 0.0 and a.labels["No Finding"] == 0.0

    b = studies["vindr:img_b"]
    assert b.views[0].boxes == [] and b.labels["No Finding"] == 1.0 and b.labels["Cardiomegaly"] == 0.0

    c = studies["vindr:img_c"]  # no image-level labels: the CSV's box classes give 0/1, global labels unknown
    assert [b.label for b in c.views[0].boxes] == ["aortic enlargement"]
    assert c.labels["Aortic Enlargement"] == 1.0 and c.labels["Cardiomegaly"] == 0.0
    assert "Tuberculosis" not in c.labels
    assert set(a.labels) - {"Enlarged PA", "Other Diseases"} <= set(LABELS)

    assert _skipped(source, "train.csv:8", "Pleural effusion")
    assert _skipped(source, "img_d.dicom", "not found")
    assert _skipped(source, "img_e.dicom", "DICOM header")


def test_vindr_physionet_layout(tmp_path: Path):
    layouts.dicom(tmp_path / "test" / "t1.dicom", 64, 32)
    layouts.write_csv(tmp_path / "annotations" / "annotations_test.csv",
                      ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"],
                      [["t1", "", "Pneumothorax", 0, 0, 16, 32]])
    (study,) = list(open_source("vindr", tmp_path))
    assert study.meta["split"] == "test" and study.labels["Pneumothorax"] == 1.0
    assert study.views[0].boxes[0].as_tuple() == pytest.approx((0, 0, 0.5, 0.5))


def test_nih(tmp_path: Path):
    layouts.nih(tmp_path)
    source = open_source("nih", tmp_path)
    studies = list(source)
    assert [s.study_id for s in studies] == ["nih:00000001_000", "nih:00000001_001", "nih:00000001_002"]
    first, second, third = studies
    assert {s.patient_id for s in studies} == {"nih:00000001"}
    assert first.prior is None and second.prior is first and third.prior is second
    assert second.prior_interval_days is None and third.meta["follow_up"] == 2

    assert _known(second.labels) == second.labels and len(second.labels) == 15
    assert second.positive_labels() == ["Cardiomegaly", "Emphysema"]
    assert third.labels["No Finding"] == 1.0 and third.meta["age"] is None  # "414Y" is no age
    assert (first.meta["age"], first.meta["sex"], first.meta["original_size"]) == (57, "M", (2749, 2682))
    assert (first.views[0].view_position, second.views[0].view_position) == ("PA", "AP")
    assert (first.meta["split"], third.meta["split"]) == ("train_val", "test")

    (box,) = first.views[0].boxes
    assert box.label == "cardiomegaly" and box.as_tuple() == pytest.approx((0.25, 0.5, 0.75, 0.75))
    assert second.views[0].boxes == []
    assert _skipped(source, "00000002_000", "Kidney Stone")
    assert _skipped(source, "00000003_000.png", "not found")
    assert _skipped(source, "BBox_List_2017.csv:3", "unusable box")


def test_iu_xray(tmp_path: Path):
    layouts.iu_xray(tmp_path)
    source = open_source("iu_xray", tmp_path)
    studies = _by_id(source)
    assert set(studies) == {"iu_xray:1", "iu_xray:2"}

    one = studies["iu_xray:1"]
    assert one.patient_id == "openi:1"
    assert [v.image_id for v in one.views] == ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]
    assert all(v.view_position is None for v in one.views)
    assert one.report.findings == "The heart is enlarged. Opacity at the left base."
    assert one.report.impression == "Cardiomegaly." and one.report.kind == "report"
    assert one.labels == {"Cardiomegaly": 1.0, "Lung Opacity": 1.0, "No Finding": 0.0}
    assert one.meta["indication"] == "Positive TB test" and len(one.meta["mesh_major"]) == 3

    two = studies["iu_xray:2"]
    assert [v.image_id for v in two.views] == ["CXR2_IM-0652-1001"]  # found in a subfolder
    assert two.labels == {"No Finding": 1.0} and two.report.findings == ""
    assert _skipped(source, "image CXR2_IM-0652-2001", "not found")
    assert _skipped(source, "3.xml", "none of the report's images")
    assert _skipped(source, "10.xml", "unreadable report XML")


def test_mimic_cxr(tmp_path: Path):
    layouts.mimic_cxr(tmp_path)
    source = open_source("mimic_cxr", tmp_path)
    studies = list(source)
    assert [s.study_id for s in studies] == ["mimic_cxr:s50414267", "mimic_cxr:s53189527"]
    first, second = studies
    assert {s.patient_id for s in studies} == {"mimic_cxr:10000032"}

    assert [(v.image_id, v.view_position) for v in first.views] == [("d-pa", "PA"), ("d-lat", "LATERAL")]
    assert first.frontal().image_id == "d-pa" and first.lateral().image_id == "d-lat"
    assert first.views[0].size == (3056, 2544)
    assert _known(first.labels) == {"Cardiomegaly": 1.0, "Pleural Effusion": 0.0}
    assert math.isnan(first.labels["Edema"]) and first.meta["uncertain"] == ["Edema"]
    assert first.report.findings.startswith("There is no focal consolidation, pleural effusion or pneumothorax. Bi")
    assert first.report.impression == "No acute cardiopulmonary process."
    assert first.meta["split"] == "train" and first.prior is None

    interval = datetime(2180, 6, 26, 16, 55, 0) - datetime(2180, 5, 6, 21, 30, 14)
    assert second.prior is first
    assert second.prior_interval_days == pytest.approx(interval.total_seconds() / 86400, abs=1e-3)
    assert _known(second.labels) == {"No Finding": 1.0} and second.report is None
    assert _skipped(source, "d-missing.jpg", "not found")
    assert _skipped(source, "s57375967", "none of the study's images")
    assert _skipped(source, "metadata.csv.gz:6", "malformed metadata row")
    assert _skipped(source, "chexpert.csv:4", "'2.0' is not a label")


def test_vqa_rad(tmp_path: Path):
    layouts.vqa_rad(tmp_path)
    source = open_source("vqa_rad", tmp_path)
    studies = _by_id(source)
    assert set(studies) == {"vqa_rad:synpic100", "vqa_rad:synpic200", "vqa_rad:synpic300"}
    assert studies["vqa_rad:synpic200"].organ == "head"  # yielded, marked: curation leaves it out by default

    study = studies["vqa_rad:synpic100"]
    assert study.organ == "chest" and study.views[0].view_position is None
    assert study.patient_id == "vqa_rad:48e1dd0e-8552-46ad-a354-5eb55be86de6"
    assert [(q.question, q.answer, q.closed) for q in study.qa] == [
        ("Is there a pneumothorax?", "No", True), ("How many ribs are fractured?", "0", False)]
    assert [q.meta["official_split"] for q in study.qa] == ["train", "test"]
    assert study.meta["official_test_questions"] == 1 and study.views[0].path.endswith("synpic100.jpg")
    assert _skipped(source, "qid 7", "repeats qid 1")  # same question and answer, other wording of punctuation

    other = studies["vqa_rad:synpic300"]
    assert other.patient_id == "vqa_rad:synpic300"
    # the heart-normal question answered both ways is dropped in both copies; the open one keeps its first answer
    assert [(q.answer, q.meta["qid"]) for q in other.qa] == [("yes", 5), ("Half the thorax", 10)]
    assert other.qa[1].question == "How wide is/are the heart?" and other.qa[1].meta["question_type"] == "SIZE"
    assert _skipped(source, "qid 8", "answered no and yes") and _skipped(source, "qid 9", "answered no and yes")
    assert _skipped(source, "qid 11", "another answer")
    assert _skipped(source, "qid 4", "empty")
    assert _skipped(source, "synpic404.jpg", "not found")


def test_vqa_rad_examples_carry_the_official_split(tmp_path: Path):
    layouts.vqa_rad(tmp_path)
    study = _by_id(open_source("vqa_rad", tmp_path))["vqa_rad:synpic100"]
    examples = get_task("vqa").format(study, random.Random(0))
    assert [(e.meta["official_split"], e.meta["qid"], e.meta["template"]) for e in examples] == [
        ("train", 1, "source"), ("test", 2, "source")]


def test_slake(tmp_path: Path):
    layouts.slake(tmp_path)
    source = open_source("slake", tmp_path)
    studies = _by_id(source)
    assert set(studies) == {"slake:xmlab1"}  # xmlab2 is CT, xmlab3 has no image, xmlab4 no answer

    study = studies["slake:xmlab1"]
    assert [(q.question, q.closed) for q in study.qa] == [
        ("Does the picture contain lung?", True), ("Which organ is abnormal?", False), ("Where is the heart?", False)]
    assert study.meta["splits"] == ["test", "train"] and "split" not in study.meta
    view = study.views[0]
    assert view.size == (100, 200)
    boxes = {b.label: b.as_tuple() for b in view.boxes}
    assert boxes == {"heart": pytest.approx((0.4, 0.4, 0.6, 0.7)), "left lung": pytest.approx((0.6, 0.1, 0.9, 0.8))}
    assert _skipped(source, "detection.json: Right Lung", "unusable box")
    assert _skipped(source, "xmlab3/source.jpg", "not found")
    assert _skipped(source, "test.json[1]", "empty")


def test_limit_stops_early(tmp_path: Path):
    layouts.nih(tmp_path)
    assert len(list(open_source("nih", tmp_path, limit=2))) == 2
