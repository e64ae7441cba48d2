"""Adapters for the folders of ../shared/data (tb, covid, shenzhen_lungs, openi, nih, hannover, vqa_rad) and their
shared readers.

Each adapter is tested on a small fixture written here in that exact layout, then on the real folder (skipped
where ../shared/data is absent) against the counts its README gives.
"""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrvlm.records import LABELS, Study, load_mask
from cxrvlm.sources._common import link_priors, mesh_labels, nlm_patient_id, nlm_tb_label, parse_label
from cxrvlm.sources.base import list_sources, open_source
from cxrvlm.tasks import get_task
from cxrvlm.tokens.seg import split_lungs

try:
    import layouts
except ImportError:  # tests/ collected as a package
    from . import layouts


def _png(path: Path, width: int, height: int, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((height, width), value, np.uint8)
    arr[: height // 2, : width // 3] = 255  # asymmetric, so a transposed size would show
    Image.fromarray(arr).save(path)
    return path


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# ---------------------------------------------------------------- shared readers

def test_nlm_names_give_one_patient_id_and_label() -> None:
    assert nlm_patient_id("CHNCXR_0002_0") == "shenzhen:CHNCXR_0002"
    assert nlm_patient_id("CHNCXR_0002_0.png") == "shenzhen:CHNCXR_0002"
    assert nlm_patient_id("MCUCXR_0104_1") == "montgomery:MCUCXR_0104"
    assert nlm_patient_id("n10") is None
    assert nlm_tb_label("MCUCXR_0104_1") == 1.0 and nlm_tb_label("CHNCXR_0002_0.png") == 0.0
    assert math.isnan(nlm_tb_label("px12"))


def test_parse_label_values_and_error() -> None:
    assert [parse_label(v) for v in ("1", "0.0", "yes", "False")] == [1.0, 0.0, 1.0, 0.0]
    assert math.isnan(parse_label("")) and math.isnan(parse_label("-1"))
    with pytest.raises(ValueError, match="tb: 'maybe'"):
        parse_label("maybe", "tb")


def test_mesh_labels_map_to_known_names() -> None:
    assert mesh_labels(["normal"]) == {"No Finding": 1.0}
    got = mesh_labels(["Cardiomegaly/mild", "Pulmonary Atelectasis/base/left", "Spine/degenerative"])
    assert got == {"Cardiomegaly": 1.0, "Atelectasis": 1.0, "No Finding": 0.0}
    assert mesh_labels(["Catheters, Indwelling"]) == {"Support Devices": 1.0}  # a device is not a finding
    from cxrvlm.sources._common import MESH_TO_LABELS

    assert {n for names in MESH_TO_LABELS.values() for n in names} <= set(LABELS)


def test_link_priors_links_the_immediately_earlier_study() -> None:
    a, b, c = (Study(s, "p", "x", "l") for s in "abc")
    link_priors([(12.0, c), (0.0, a), (5.0, b)])
    assert a.prior is None
    assert b.prior is a and b.prior_interval_days == 5.0
    assert c.prior is b and c.prior_interval_days == 7.0


def test_registry_lists_the_shared_data_adapters() -> None:
    assert {"tb", "covid", "shenzhen_lungs", "openi", "manifest", "nih", "hannover", "vqa_rad"} <= set(
        list_sources())


# ---------------------------------------------------------------- tb

@pytest.fixture()
def tb_root(tmp_path: Path) -> Path:
    root = tmp_path / "tb"
    rows = [["CHNCXR_0002_0", "shenzhen", 0, 16, 12], ["MCUCXR_0104_1", "montgomery", 1, 16, 12],
            ["n10", "da_db", 0, 16, 12], ["px5", "da_db", 1, 16, 12],
            ["CHNCXR_0099_1", "shenzhen", 1, 16, 12],  # no image file
            ["p7", "da_db", "x", 16, 12]]  # bad label
    _csv(root / "labels.csv", ["image_id", "source", "tb", "width", "height"], rows)
    for image_id in ("CHNCXR_0002_0", "MCUCXR_0104_1", "n10", "px5", "p7"):
        _png(root / "images" / f"{image_id}.png", 16, 12)
    return root


def test_tb_studies_labels_patients_and_skips(tb_root: Path) -> None:
    src = open_source("tb", tb_root)
    studies = {s.study_id: s for s in src}
    assert sorted(studies) == ["tb:CHNCXR_0002_0", "tb:MCUCXR_0104_1", "tb:n10", "tb:px5"]
    normal, tb = studies["tb:CHNCXR_0002_0"], studies["tb:MCUCXR_0104_1"]
    assert normal.labels == {"Tuberculosis": 0.0, "No Finding": 1.0}
    assert tb.labels == {"Tuberculosis": 1.0, "No Finding": 0.0}
    assert normal.patient_id == "shenzhen:CHNCXR_0002" and tb.patient_id == "montgomery:MCUCXR_0104"
    assert studies["tb:px5"].patient_id == "da_db:px5" and studies["tb:px5"].meta["dataset"] == "da_db"
    view = normal.views[0]
    assert view.size == (12, 16) and view.view_position is None and Path(view.path).is_file()
    reasons = dict(src.skipped)
    assert len(src.skipped) == 2
    assert "not found" in reasons["labels.csv line 6 (CHNCXR_0099_1)"]
    assert "'x'" in reasons["labels.csv line 7 (p7)"]


def test_tb_limit_and_missing_layout(tb_root: Path, tmp_path: Path) -> None:
    assert len(list(open_source("tb", tb_root, limit=2))) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="labels.csv not found"):
        list(open_source("tb", tmp_path / "empty"))


def _contours(entries: list[dict]) -> dict:
    return {"frame": {"width": 16, "height": 12}, "convention": "x, y pixels", "images": entries}


def test_tb_lung_masks_from_files_then_contours(tb_root: Path) -> None:
    mask = np.zeros((12, 16), bool)
    mask[2:10, 1:6] = mask[2:10, 9:15] = True
    layouts.png(tb_root / "masks" / "CHNCXR_0002_0.png", mask=mask)
    layouts.png(tb_root / "masks" / "px5.png", 12, 15)  # another size than the film
    layouts.png(tb_root / "masks" / "zz9.png", 12, 16)  # no labels.csv row
    right, left = [[1, 2], [5, 2], [5, 9], [1, 9]], [[9, 2], [14, 2], [14, 9], [9, 9]]
    entries = [{"image_id": "MCUCXR_0104_1", "right_lung": right, "left_lung": left},
               {"image_id": "n10", "right_lung": [[1, 2]], "left_lung": left},  # not a polygon
               {"image_id": "q1", "right_lung": right, "left_lung": left}]  # no labels.csv row
    (tb_root / "lung_contours.json").write_text(json.dumps(_contours(entries)))
    src = open_source("tb", tb_root)
    views = {s.study_id: s.views[0] for s in src}
    assert views["tb:CHNCXR_0002_0"].masks == {"lungs": str(tb_root / "masks" / "CHNCXR_0002_0.png")}
    drawn = views["tb:MCUCXR_0104_1"].masks["lungs"]  # no file: drawn from the two polygons
    assert drawn.shape == (12, 16) and drawn[5, 3] and drawn[5, 11] and not drawn[5, 7] and not drawn[0, 0]
    assert split_lungs(drawn)["right lung"][5, 3]  # the patient's right lung is on the image's left
    assert views["tb:n10"].masks == {} and views["tb:px5"].masks == {}  # not annotated: no mask, study kept
    reasons = dict(src.skipped)
    assert "at least 3" in reasons["lung_contours.json images[1]"]
    assert reasons["masks/px5.png"] == "mask is 15x12, the film is 16x12; the film is kept without a mask"
    assert "not listed" in reasons["masks/zz9.png"] and "not listed" in reasons["lung_contours.json q1"]


def test_tb_masks_give_segmentation_detection_and_lung_size_examples(tb_root: Path) -> None:
    mask = np.zeros((12, 16), bool)
    mask[2:10, 1:6] = mask[2:10, 8:15] = True  # the patient's left lung is larger
    layouts.png(tb_root / "masks" / "CHNCXR_0002_0.png", mask=mask)
    study = next(s for s in open_source("tb", tb_root) if s.study_id == "tb:CHNCXR_0002_0")
    by_task = {t: get_task(t).format(study, random.Random(1)) for t in ("segment", "detect", "ground", "vqa")}
    assert len(by_task["segment"]) == 1 and by_task["segment"][0].target["masks"]
    assert {b["label"] for b in by_task["detect"][0].target["boxes"]} == {"right lung", "left lung"}
    assert sorted(e.target["label"] for e in by_task["ground"]) == ["left lung", "right lung"]
    lung_size = [e for e in by_task["vqa"] if e.meta["template"] == "lung_size"]
    assert [e.suffix for e in lung_size] == ["left"]


# ---------------------------------------------------------------- shenzhen_lungs

@pytest.fixture()
def shenzhen_root(tmp_path: Path) -> Path:
    root = tmp_path / "shenzhen_lungs"
    for stem, size in (("CHNCXR_0002_0", (20, 18)), ("CHNCXR_0050_1", (20, 18)), ("CHNCXR_0060_0", (20, 18))):
        _png(root / "images" / f"{stem}.png", *size)
    _png(root / "masks" / "CHNCXR_0002_0.png", 20, 18, value=0)
    _png(root / "masks" / "CHNCXR_0050_1.png", 19, 18)  # wrong size
    _png(root / "masks" / "CHNCXR_0077_0.png", 20, 18)  # no image
    return root


def test_shenzhen_lungs_masks_labels_and_shared_patient(shenzhen_root: Path, tb_root: Path) -> None:
    src = open_source("shenzhen_lungs", shenzhen_root)
    studies = {s.study_id: s for s in src}
    assert sorted(studies) == ["shenzhen_lungs:CHNCXR_0002_0", "shenzhen_lungs:CHNCXR_0060_0"]
    s = studies["shenzhen_lungs:CHNCXR_0002_0"]
    assert s.labels == {"Tuberculosis": 0.0, "No Finding": 1.0}
    mask = load_mask(s.views[0].masks["lungs"], s.views[0].size)
    assert mask.shape == (18, 20) and mask[0, 0] and not mask[-1, -1]
    assert studies["shenzhen_lungs:CHNCXR_0060_0"].views[0].masks == {}  # an image without a mask is kept
    reasons = dict(src.skipped)
    assert reasons["images/CHNCXR_0050_1.png"] == "mask CHNCXR_0050_1.png is 19x18, image is 20x18"
    assert "without an image" in reasons["masks/CHNCXR_0077_0.png"]
    tb_patients = {t.patient_id for t in open_source("tb", tb_root)}
    assert s.patient_id == "shenzhen:CHNCXR_0002" and s.patient_id in tb_patients


# ---------------------------------------------------------------- openi

def test_openi_reports_labels_and_skips(tmp_path: Path) -> None:
    root = tmp_path / "openi"
    root.mkdir()
    lines = [
        {"report_id": "3", "indication": "pain", "comparison": "", "findings": "", "impression": "No acute disease.",
         "mesh_major": ["normal"], "mesh_automatic": [], "image_ids": ["CXR3_IM-1384-1001"]},
        {"report_id": "4", "findings": "Heart is enlarged. XXXX opacity.", "impression": "Cardiomegaly.",
         "mesh_major": ["Cardiomegaly/mild", "Opacity/lung/base/left"], "image_ids": ["a", "b"]},
        {"report_id": "5", "findings": " ", "impression": "", "mesh_major": ["normal"]},
        {"report_id": "4", "findings": "again", "impression": "", "mesh_major": []},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{not json\n"
    (root / "reports.jsonl").write_text(text)
    src = open_source("openi", root)
    studies = {s.study_id: s for s in src}
    assert sorted(studies) == ["openi:3", "openi:4"]
    s4 = studies["openi:4"]
    assert s4.views == [] and s4.patient_id == "openi:4"
    assert s4.report.kind == "report" and s4.report.impression == "Cardiomegaly." and "XXXX" in s4.report.findings
    assert s4.labels == {"Cardiomegaly": 1.0, "Lung Opacity": 1.0, "No Finding": 0.0}
    assert s4.meta["mesh_major"] == ["Cardiomegaly/mild", "Opacity/lung/base/left"]
    assert studies["openi:3"].labels == {"No Finding": 1.0} and studies["openi:3"].meta["indication"] == "pain"
    reasons = dict(src.skipped)
    assert reasons["reports.jsonl line 3 (report 5)"] == "neither findings nor impression"
    assert "already read" in reasons["reports.jsonl line 4 (report 4)"]
    assert "not valid JSON" in reasons["reports.jsonl line 5"]


# ---------------------------------------------------------------- covid

_COVID_HEADER = ["image_id", "patientid", "offset", "sex", "age", "finding", "view", "date", "location",
                 "clinical_notes", "license", "doi", "url", "has_lung_mask", "geographic_extent_mean", "opacity_mean",
                 "width", "height"]


def _covid_row(image_id: str, patient: str, offset: str, finding: str, view: str, notes: str = "",
               licence: str = "", mask: int = 0, extent: str = "", opacity: str = "", size=(40, 30)) -> list:
    return [image_id, patient, offset, "F", "52", finding, view, "2020", "Somewhere", notes, licence, "", "u",
            mask, extent, opacity, size[0], size[1]]


@pytest.fixture()
def covid_root(tmp_path: Path) -> Path:
    root = tmp_path / "covid"
    rows = [
        _covid_row("a_l.jpg", "1", "0", "COVID-19", "L", notes="day 0 notes"),  # lateral listed before its PA
        _covid_row("a.jpg", "1", "0", "COVID-19", "PA", notes="day 0 notes", licence="CC BY 4.0", mask=1),
        _covid_row("b.png", "1", "5", "COVID-19, ARDS", "AP Supine", mask=1, extent="3.5", opacity="2.7"),
        _covid_row("c.png", "1", "12", "COVID-19", "AP"),
        _covid_row("e.png", "2", "", "Streptococcus", "PA"),
        _covid_row("e_l.png", "2", "", "Streptococcus", "L"),
        _covid_row("f1.png", "3", "", "Pneumonia", "PA"),
        _covid_row("f2.png", "3", "", "Pneumonia", "PA"),
        _covid_row("g.png", "4", "3", "No Finding", "PA"),
        _covid_row("gone.png", "5", "0", "COVID-19", "PA"),  # file missing
        _covid_row("b.png", "9", "5", "COVID-19, ARDS", "AP Supine"),  # patient 1's image entered again as 9
        _covid_row("d.png", "9", "20", "COVID-19", "PA"),
    ]
    _csv(root / "metadata.csv", _COVID_HEADER, rows)
    for name in ("a_l.jpg", "a.jpg", "b.png", "c.png", "e.png", "e_l.png", "f1.png", "f2.png", "g.png", "d.png"):
        _png(root / "images" / name, 40, 30)
    _png(root / "masks" / "a.png", 40, 30)  # b.png says has_lung_mask but has none
    coco = {
        "categories": [{"id": 1, "name": "Right Lung"}, {"id": 2, "name": "Left Lung"}],
        "images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30},
                   {"id": 8, "file_name": "c.png", "width": 80, "height": 60},
                   {"id": 9, "file_name": "gone.png", "width": 40, "height": 30}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "bbox": [24, 3, 12, 21]},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [4, 3, 12, 21]},
            {"id": 3, "image_id": 8, "category_id": 1, "bbox": [4, 3, 12, 21]},
        ],
    }
    (root / "lung_boxes.json").write_text(json.dumps(coco))
    return root


def test_covid_multiview_study_masks_boxes_and_notes(covid_root: Path) -> None:
    src = open_source("covid", covid_root)
    studies = {s.study_id: s for s in src}
    day0 = studies["covid:1:day0"]
    assert [v.image_id for v in day0.views] == ["a.jpg", "a_l.jpg"]  # frontal first
    assert [v.view_position for v in day0.views] == ["PA", "LATERAL"]
    pa = day0.views[0]
    assert pa.size == (30, 40) and set(pa.masks) == {"lungs"} and load_mask(pa.masks["lungs"], pa.size).all()
    right, left = pa.boxes
    assert (right.label, left.label) == ("right lung", "left lung")
    assert right.as_tuple() == pytest.approx((0.1, 0.1, 0.4, 0.8))  # the patient's right is on the image's left
    assert left.as_tuple() == pytest.approx((0.6, 0.1, 0.9, 0.8))
    assert day0.report.kind == "case_notes" and day0.report.findings == "day 0 notes"
    assert day0.licence == "CC BY 4.0" and day0.meta["licences"] == {"a.jpg": "CC BY 4.0", "a_l.jpg": ""}
    assert day0.meta["offset_days"] == 0.0 and day0.meta["age"] == 52.0
    assert studies["covid:1:day12"].licence == "see url" and studies["covid:1:day12"].report is None


def test_covid_priors_intervals_scores_and_labels(covid_root: Path) -> None:
    studies = {s.study_id: s for s in open_source("covid", covid_root)}
    day5, day12, day20 = studies["covid:1:day5"], studies["covid:1:day12"], studies["covid:1:day20"]
    assert studies["covid:1:day0"].prior is None
    assert day5.prior is studies["covid:1:day0"] and day5.prior_interval_days == 5.0
    assert day12.prior is day5 and day12.prior_interval_days == 7.0
    assert day20.prior is day12 and day20.prior_interval_days == 8.0  # patient 9 merged into patient 1
    assert day5.scores == {"geographic_extent": 3.5, "opacity": 2.7} and day12.scores == {}
    assert day5.views[0].view_position == "AP" and day5.views[0].masks == {}
    assert day5.labels["COVID-19"] == 1.0 and day5.labels["ARDS"] == 1.0 and day5.labels["Pneumonia"] == 1.0
    assert day5.labels["No Finding"] == 0.0 and "Bacterial Pneumonia" not in day5.labels  # ARDS: not specific
    assert day12.labels["Bacterial Pneumonia"] == 0.0 and day12.labels["Viral Pneumonia"] == 1.0
    assert studies["covid:4:day3"].labels["No Finding"] == 1.0 and studies["covid:4:day3"].labels["COVID-19"] == 0.0


def test_covid_undated_rows_and_skips(covid_root: Path) -> None:
    src = open_source("covid", covid_root)
    studies = {s.study_id: s for s in src}
    pair = studies["covid:2:undated"]  # PA + L without offset: one study, no prior
    assert [v.image_id for v in pair.views] == ["e.png", "e_l.png"] and pair.prior is None
    assert pair.labels["Streptococcus"] == 1.0 and pair.labels["Bacterial Pneumonia"] == 1.0
    assert pair.labels["COVID-19"] == 0.0
    assert {"covid:3:f1", "covid:3:f2"} <= set(studies)  # two undated frontals: two studies
    assert "Viral Pneumonia" not in studies["covid:3:f1"].labels  # unspecified pneumonia
    assert {s.patient_id for s in studies.values()} == {"covid:1", "covid:2", "covid:3", "covid:4"}
    assert sum(len(s.views) for s in studies.values()) == 10
    reasons = dict(src.skipped)
    assert "gone.png not found" in reasons["metadata.csv line 11 (gone.png)"]
    assert reasons["metadata.csv line 12 (b.png)"] == "image already listed at line 4"
    assert "80x60" in reasons["lung_boxes.json boxes of c.png"] and studies["covid:1:day12"].views[0].boxes == []
    assert "missing" in reasons["masks/b.png"]
    assert "no usable row" in reasons["lung_boxes.json boxes of gone.png"]


# ---------------------------------------------------------------- hannover

def test_hannover_studies_patients_priors_and_labels(tmp_path: Path) -> None:
    layouts.hannover(tmp_path)
    src = open_source("hannover", tmp_path)
    studies = {s.study_id: s for s in src}
    assert sorted(studies) == ["hannover:a:a0", "hannover:a:a3", "hannover:a:a3b", "hannover:b:b1"]
    a0, a3, a3b, b1 = (studies[f"hannover:{k}"] for k in ("a:a0", "a:a3", "a:a3b", "b:b1"))
    assert {a0.patient_id, a3.patient_id, a3b.patient_id} == {"hannover:a"} and b1.patient_id == "hannover:b"
    # admission_offset -3: the film is from day 3 of the stay; day 0 is the earlier film
    assert (a0.meta["day"], a3.meta["day"]) == (0.0, 3.0)
    assert a0.prior is None and a3.prior is a0 and a3.prior_interval_days == 3.0
    assert a3b.prior is None and b1.prior is None and b1.meta["day"] is None  # same day; undated
    assert (a0.views[0].view_position, a3b.views[0].view_position) == ("AP", "PA")
    assert a0.views[0].size == (24, 30) and Path(a0.views[0].path).is_file()
    assert a0.labels["COVID-19"] == a0.labels["Viral Pneumonia"] == a0.labels["Pneumonia"] == 1.0
    assert math.isnan(a0.labels["Tuberculosis"]) and "No Finding" not in a0.labels
    assert b1.labels["COVID-19"] == 1.0  # empty covid19_case: the repository holds COVID-19 patients only
    assert a3.meta["labs"] == {"crp": {"value": 29.0, "offset": 0.0}}
    assert a3.meta["icu_admission_offset"] == -1.0 and a3.meta["death_offset"] is None
    assert a3.meta["contrast_enhanced"] == "CLAHE" and a3.licence.startswith("CC BY 3.0")
    reasons = dict(src.skipped)
    assert reasons["metadata.csv line 5 (a0)"] == "image already listed at line 3"
    assert "images/gone.jpg not found" in reasons["metadata.csv line 7 (c1)"]
    assert reasons["metadata.csv line 8 (c2)"] == "admission_offset: 'soon' is not a number"
    assert reasons["metadata.csv line 9 (c3)"] == "view 'LL' is not AP or PA"


def test_hannover_missing_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metadata.csv not found"):
        list(open_source("hannover", tmp_path))


# ---------------------------------------------------------------- the real folders (README counts)

@pytest.mark.realdata
def test_real_tb(shared_data: Path) -> None:
    src = open_source("tb", shared_data / "tb")
    studies = list(src)
    assert len(studies) == 358 and src.skipped == []
    assert sum(s.labels["Tuberculosis"] == 1.0 for s in studies) == 160
    assert sum(s.labels["Tuberculosis"] == 0.0 for s in studies) == 198
    assert len({s.patient_id for s in studies}) == 358  # each image is one patient
    assert {s.meta["dataset"] for s in studies} == {"shenzhen", "montgomery", "da_db"}
    assert all(s.views[0].size == (512, 512) for s in studies)


@pytest.mark.realdata
def test_real_shenzhen_lungs_share_patients_with_tb(shared_data: Path) -> None:
    studies = list(open_source("shenzhen_lungs", shared_data / "shenzhen_lungs"))
    assert len(studies) == 7 and all(set(s.views[0].masks) == {"lungs"} for s in studies)
    first = studies[0].views[0]
    assert load_mask(first.masks["lungs"], first.size).any()
    tb_patients = {s.patient_id for s in open_source("tb", shared_data / "tb")}
    shared = {s.patient_id for s in studies} & tb_patients
    assert "shenzhen:CHNCXR_0002" in shared and len(shared) == 4  # the same patients, resized, in tb/


@pytest.mark.realdata
def test_real_covid(shared_data: Path) -> None:
    root = shared_data / "covid"
    raw = list(csv.DictReader((root / "metadata.csv").open()))
    assert len(raw) == 416 and len({r["patientid"] for r in raw}) == 229  # the README's counts of rows
    src = open_source("covid", root)
    studies = list(src)
    views = [v for s in studies for v in s.views]
    # 5 rows repeat an image under a second patient id (patients 339 and 340 copy 285 and 287)
    duplicates = [r for _, r in src.skipped if r.startswith("image already listed")]
    assert len(duplicates) == 5 and len(views) == 411 and len({v.image_id for v in views}) == 411
    assert len({s.patient_id for s in studies}) == 227
    assert sum(bool(v.masks) for v in views) == 301 and all(v.is_frontal for v in views if v.masks)
    assert len(json.loads((root / "lung_boxes.json").read_text())["images"]) == 110
    boxed = [v for v in views if v.boxes]
    assert len(boxed) == 108  # 2 box sets were drawn on another size of the image and are skipped
    assert all([b.label for b in v.boxes] == ["right lung", "left lung"] for v in boxed)
    assert sum(v.boxes[0].x1 < v.boxes[1].x1 for v in boxed) == len(boxed)  # patient's right on the image left
    assert any(s.frontal() and s.lateral() for s in studies)  # multi-view studies
    with_prior = [s for s in studies if s.prior is not None]
    assert len(with_prior) > 50 and all(s.prior_interval_days > 0 for s in with_prior)
    assert all(s.prior.patient_id == s.patient_id for s in with_prior)
    assert sum(s.scores != {} for s in studies) == 64
    assert sum(bool(r["clinical_notes"].strip()) for r in raw) == 340
    assert sum(s.report is not None and s.report.kind == "case_notes" for s in studies) > 250
    assert sum(s.labels.get("COVID-19") == 1.0 for s in studies) > 250


@pytest.mark.realdata
def test_real_openi(shared_data: Path) -> None:
    path = shared_data / "openi" / "reports.jsonl"
    assert sum(1 for line in path.open() if line.strip()) == 2734
    src = open_source("openi", path.parent)
    studies = list(src)
    # 19 reports have neither findings nor impression
    assert len(studies) == 2715 and len(src.skipped) == 19 and len(studies) + len(src.skipped) == 2734
    assert all(s.views == [] and s.report for s in studies)
    assert sum(s.labels.get("No Finding") == 1.0 for s in studies) > 900
    assert all(isinstance(s.meta["mesh_major"], list) for s in studies)


@pytest.mark.realdata
def test_real_tb_lung_masks(shared_data: Path) -> None:
    src = open_source("tb", shared_data / "tb")
    studies = list(src)
    masked = [s for s in studies if s.views[0].masks]
    assert len(masked) == 153 and src.skipped == []  # Shenzhen and Montgomery films; the rest not annotated
    assert {s.meta["dataset"] for s in masked} == {"shenzhen", "montgomery"}
    contours = json.loads((shared_data / "tb" / "lung_contours.json").read_text())["images"]
    assert {e["image_id"] for e in contours} == {s.views[0].image_id for s in masked}
    view = masked[0].views[0]
    sides = split_lungs(load_mask(view.masks["lungs"], view.size))
    assert set(sides) == {"right lung", "left lung"}
    right_x = np.nonzero(sides["right lung"])[1].mean()
    assert right_x < np.nonzero(sides["left lung"])[1].mean()  # the patient's right on the image's left


@pytest.mark.realdata
def test_real_nih(shared_data: Path) -> None:
    root = shared_data / "nih"
    src = open_source("nih", root)
    studies = list(src)
    assert len(studies) == 713 and src.skipped == [] and len({s.patient_id for s in studies}) == 476
    assert sum(s.labels["Pneumonia"] == 1.0 for s in studies) == 339
    assert sum(s.labels["No Finding"] == 1.0 for s in studies) == 374
    assert all(len(s.labels) == 15 and set(s.labels) <= set(LABELS) for s in studies)  # 14 findings + No Finding
    assert {s.views[0].view_position for s in studies} == {"AP", "PA"}
    boxed = {s.views[0].image_id + ".png": s.views[0] for s in studies if s.views[0].boxes}
    assert len(boxed) == 32 and sum(len(v.boxes) for v in boxed.values()) == 36
    with (root / "BBox_List_2017.csv").open() as f:
        name, finding, x, y, w, h = list(csv.reader(f))[1][:6]  # the first box, under the header
    box = boxed[name].boxes[0]  # NIH's 1024-px box halved lands on the 512-px copy
    assert box.to_pixels(512, 512) == pytest.approx((float(x) / 2, float(y) / 2, (float(x) + float(w)) / 2,
                                                    (float(y) + float(h)) / 2))
    assert box.label == finding.lower() and Image.open(boxed[name].path).size == (512, 512)
    with_prior = [s for s in studies if s.prior is not None]
    assert len(with_prior) == 237 and all(s.prior.patient_id == s.patient_id for s in with_prior)
    assert all(s.prior.meta["follow_up"] < s.meta["follow_up"] for s in with_prior)


@pytest.mark.realdata
def test_real_hannover(shared_data: Path) -> None:
    src = open_source("hannover", shared_data / "hannover")
    studies = list(src)
    assert len(studies) == 190 and src.skipped == [] and len({s.patient_id for s in studies}) == 50
    assert sum(s.views[0].view_position == "AP" for s in studies) == 156
    assert sum(s.views[0].view_position == "PA" for s in studies) == 34
    assert all(s.labels["COVID-19"] == 1.0 and math.isnan(s.labels["Tuberculosis"]) for s in studies)
    with_prior = [s for s in studies if s.prior is not None]
    assert len(with_prior) == 121  # 190 films - 50 first films - 19 taken on the day of an earlier one
    assert all(s.prior.patient_id == s.patient_id and s.prior_interval_days > 0 for s in with_prior)
    assert all(s.meta["day"] - s.prior.meta["day"] == s.prior_interval_days for s in with_prior)


@pytest.mark.realdata
def test_real_vqa_rad(shared_data: Path) -> None:
    raw = json.loads((shared_data / "vqa_rad" / "VQA_RAD Dataset Public.json").read_text())
    assert len(raw) == 2554 and sum(r["image_organ"] == "CHEST" for r in raw) == 944
    src = open_source("vqa_rad", shared_data / "vqa_rad")
    studies = list(src)
    chest = [s for s in studies if s.organ == "chest"]
    assert len(studies) == 224 and len(chest) == 80
    assert {s.organ for s in studies} == {"chest", "head", "abdomen"}
    qa = [q for s in chest for q in s.qa]
    # 944 chest questions less repeats on one image (the publisher's templated "frame" questions come in pairs)
    assert len(qa) == 800 and sum(q.closed for q in qa) == 527
    assert all(q.meta["official_split"] in ("train", "test") for q in qa)
    # this copy marks no question test_*: the official test questions are not in ../shared/data
    assert not any(r["phrase_type"].startswith("test") for r in raw)
    assert len(src.skipped) == 384 and all("qid" in item for item, _ in src.skipped)  # repeats, contradictions
