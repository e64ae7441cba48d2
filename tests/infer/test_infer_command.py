"""`cxrvlm interpret`: one JSON line per image, a bad file in a batch, folders, --out pictures and pages."""
from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_images import truncate, write_dicom
from PIL import Image

from cxrvlm import NOTICE, cli
from cxrvlm.infer import check_reading


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, list[dict], str]:
    code = cli.main(["interpret", *argv, "--threads", "1"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_batch_with_a_corrupt_file_in_the_middle(tiny_checkpoint: Path, phantom_png: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(phantom_png.read_bytes())
    truncate(corrupt, keep=0.3)  # a PNG cut short: header fine, pixels missing
    dicom = write_dicom(tmp_path / "third.dcm", np.arange(40 * 30, dtype=np.uint16).reshape(40, 30))
    table = tmp_path / "batch.csv"
    code, lines, err = _run(capsys, str(phantom_png), str(corrupt), str(dicom), "--model", str(tiny_checkpoint),
                            "--tasks", "classify,detect", "--question", "Is this chest X-ray normal?",
                            "--csv", str(table))
    assert code == 1
    assert [line["image"] for line in lines] == [str(phantom_png), str(corrupt), str(dicom)]
    assert set(lines[1]) == {"image", "error"} and "corrupt.png" in lines[1]["error"]
    for good in (lines[0], lines[2]):
        assert check_reading(good) == [] and good["tasks"] == ["classify", "detect"]
    assert lines[2]["image_size"] == [40, 30]
    assert "interpret:" in err and "3/3" in err  # the progress bar
    assert err.strip().splitlines()[-1].startswith("3 film(s): 1 read, 1 not assessable, 1 failed; median ")  # 40x30
    rows = list(csv.DictReader(table.open()))
    assert [r["file"] for r in rows] == [str(phantom_png), str(corrupt), str(dicom)]
    assert rows[1]["error"] and not rows[1]["quality"] and rows[0]["quality"] == "assessable"
    assert float(rows[0]["tb_probability"]) == lines[0]["tb"]["probability"] and rows[0]["verdict"]


def test_folder_and_out_dir(tiny_checkpoint: Path, phantom_png: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for target in (images / "chest.png", images / "sub" / "chest.png"):
        target.write_bytes(phantom_png.read_bytes())
    (images / "notes.txt").write_text("not an image, and not picked up from a folder")
    out = tmp_path / "out"
    code, lines, _ = _run(capsys, str(images), "--model", str(tiny_checkpoint), "--tasks", "classify,segment",
                          "--out", str(out))
    assert code == 0 and len(lines) == 2
    assert sorted(p.name for p in out.iterdir()) == ["chest-2.html", "chest-2.overlay.png", "chest.html",
                                                     "chest.overlay.png"]
    overlay = Image.open(out / "chest.overlay.png")
    assert overlay.mode == "RGB" and overlay.width == round(96 * 512 / 120) and overlay.height > 512  # + banner
    page = (out / "chest.html").read_text()
    assert NOTICE in page and f"{lines[0]['tb']['probability']:.3f}" in page
    embedded = re.search(r"src='data:image/png;base64,([^']+)'", page)
    assert embedded and base64.b64decode(embedded.group(1)) == (out / "chest.overlay.png").read_bytes()  # one PNG
    assert "<script" not in page


def test_usage_errors_exit_2(tiny_checkpoint: Path, phantom_png: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["interpret", str(phantom_png), "--model", str(tiny_checkpoint), "--tasks", "paint"]) == 2
    assert "valid tasks" in capsys.readouterr().err
    bad_prior = tmp_path / "prior.png"
    bad_prior.write_text("not a picture")
    assert cli.main(["interpret", str(phantom_png), "--model", str(tiny_checkpoint), "--prior", str(bad_prior)]) == 2
    assert "prior.png" in capsys.readouterr().err
    assert cli.main(["interpret", str(tmp_path / "empty"), "--model", str(tiny_checkpoint)]) == 1  # missing file
    line = json.loads(capsys.readouterr().out)
    assert line["image"].endswith("empty") and "not found" in line["error"]


def test_example_phantom(tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    from cxrvlm.infer import example_image

    code, lines, _ = _run(capsys, "--example", "--model", str(tiny_checkpoint), "--tasks", "classify")
    assert code == 0 and [line["image"] for line in lines] == [str(example_image())]
    assert lines[0]["image_size"] == [512, 512]
    assert cli.main(["interpret", "--model", str(tiny_checkpoint)]) == 2
    assert "--example" in capsys.readouterr().err


def test_fhir_bundle_of_a_batch_reads_back(tiny_checkpoint: Path, phantom_png: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("fhir.resources")
    from fhir.resources.R4B.bundle import Bundle

    dicom = write_dicom(tmp_path / "film.dcm", np.arange(96 * 80, dtype=np.uint16).reshape(96, 80))
    target = tmp_path / "readings.fhir.json"
    code, lines, _ = _run(capsys, str(phantom_png), str(dicom), str(tmp_path / "missing.png"), "--model",
                          str(tiny_checkpoint), "--tasks", "classify,report", "--fhir", str(target), "--no-view-gate")
    assert code == 1  # the missing file; the other two are in the bundle
    bundle = Bundle.model_validate_json(target.read_text())
    reports = [e.resource for e in bundle.entry if e.resource.get_resource_type() == "DiagnosticReport"]
    observations = {e.fullUrl: e.resource for e in bundle.entry if e.resource.get_resource_type() == "Observation"}
    assert bundle.type == "collection" and len(reports) == 2
    for report, reading in zip(reports, lines[:2]):
        assert report.status == "preliminary" and NOTICE in report.conclusion
        tb = observations[report.result[0].reference]
        assert tb.code.text == "Tuberculosis probability"
        assert float(tb.valueQuantity.value) == pytest.approx(reading["tb"]["probability"])
        assert len(report.result) == 1 + len(reading["findings"])


def test_fhir_of_a_film_that_is_not_assessable_is_a_report_of_the_reasons() -> None:
    pytest.importorskip("fhir.resources")
    from cxrvlm.infer.fhir import readings_bundle

    refused = {"image": "lat.png", "model": "m", "quality": {"assessable": False, "reasons": ["a lateral view"]}}
    (entry,) = readings_bundle([refused]).entry
    assert entry.resource.conclusion.startswith("Not assessable: a lateral view") and not entry.resource.result


def test_dicom_seg_and_sr_for_dicom_inputs_and_a_warning_for_others(tiny_checkpoint: Path, phantom_png: Path,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hd = pytest.importorskip("highdicom")
    film = write_dicom(tmp_path / "film.dcm", (np.asarray(Image.open(phantom_png), np.uint16) * 16))
    code, lines, _ = _run(capsys, str(film), str(phantom_png), "--model", str(tiny_checkpoint), "--tasks",
                          "classify,segment", "--dicom-seg", str(tmp_path / "seg"), "--dicom-sr", str(tmp_path / "sr"),
                          "--no-view-gate")
    assert code == 0
    assert "no DICOM Segmentation: the input is not a DICOM file" in lines[1]["warnings"]
    assert "no DICOM Structured Report: the input is not a DICOM file" in lines[1]["warnings"]
    sr = hd.sr.srread(tmp_path / "sr" / "film.sr.dcm")
    (group,) = hd.sr.MeasurementReport.from_sequence([sr]).get_image_measurement_groups()
    tb = next(m for m in group.get_measurements() if m.name.meaning == "tuberculosis probability")
    assert float(tb.value) == pytest.approx(lines[0]["tb"]["probability"])
    written = tmp_path / "seg" / "film.seg.dcm"
    if lines[0]["segmentations"]:  # the tiny model's masks, whatever they are, as a SEG of the film
        assert hd.seg.segread(written).number_of_segments == len(lines[0]["segmentations"])
    else:
        assert "no DICOM Segmentation: the reading has no lung mask" in lines[0]["warnings"] and not written.exists()


def test_a_dicom_export_that_fails_costs_a_warning_not_the_reading(tmp_path: Path, monkeypatch) -> None:
    import argparse

    from cxrvlm.infer import command, dicom_seg

    film = write_dicom(tmp_path / "film.dcm", np.zeros((64, 64), np.uint16))

    def broken(reading, source, out):
        raise ValueError(f"{source}: the masks are [128, 96] pixels, the film [64, 64]")

    monkeypatch.setattr(dicom_seg, "write_lung_segmentation", broken)
    reading = {"warnings": []}
    command._write_dicom_exports(reading, str(film), "film", argparse.Namespace(dicom_seg=str(tmp_path), dicom_sr=None))
    assert reading["warnings"] == [f"no DICOM Segmentation: {film}: the masks are [128, 96] pixels, the film [64, 64]"]
