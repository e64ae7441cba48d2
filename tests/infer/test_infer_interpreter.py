"""Interpreter: the JSON schema, robustness to garbage output, pixel boxes, RLE masks, DICOM, arrays, priors."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_images import write_dicom
from infer_fixtures import ScriptedGenerate

from cxrvlm import NOTICE
from cxrvlm.infer import Interpreter, check_reading
from cxrvlm.infer.result import KEYS, TASKS
from cxrvlm.tasks import classify, report, segment, vqa
from cxrvlm.tokens.loc import LOC_RE, decode_locs, encode_box
from cxrvlm.tokens.rle import rle_decode


@pytest.fixture(scope="module")
def interp(tiny_model: Any) -> Interpreter:
    return Interpreter(tiny_model, name="tiny-test")


def test_schema_on_garbage_output(interp: Interpreter, phantom_png: Path) -> None:
    questions = ["Is this chest X-ray normal?", "What do you see?"]
    reading = json.loads(json.dumps(interp.interpret(str(phantom_png), questions=questions)))  # JSON-safe
    assert list(reading) == list(KEYS)
    assert check_reading(reading) == []
    assert reading["notice"] == NOTICE == "Research use only. Not a diagnosis."
    assert reading["image"] == str(phantom_png) and reading["model"] == "tiny-test"
    assert reading["image_size"] == [120, 96] and reading["tasks"] == list(TASKS)
    tb = reading["tb"]
    assert 0.0 <= tb["probability"] <= 1.0 and tb["threshold"] == 0.5 and tb["threshold_source"] == "default"
    assert tb["label"] == ("tuberculosis" if tb["probability"] >= 0.5 else "normal")
    assert sorted(f["label"] for f in reading["findings"]) == sorted(classify.answer_set("finding"))
    assert math.isclose(sum(f["probability"] for f in reading["findings"]), 1.0, abs_tol=1e-4)
    closed, open_ = reading["answers"]
    assert closed["closed"] and closed["answer"] in ("yes", "no") and 0.5 <= closed["probability"] <= 1.0
    assert not open_["closed"] and open_["question"] == "What do you see?"
    # random weights write garbage: each generated task is empty with a warning naming it, nothing raised
    for task, field in (("report", "report"), ("detect", "detections"), ("segment", "segmentations")):
        if not reading[field]:
            assert any(w.startswith(task) for w in reading["warnings"]), (task, reading["warnings"])
    assert set(reading["timing_ms"]) == {"read", "quality", "encode", *TASKS, "total"}
    assert all(isinstance(v, float) and v >= 0 for v in reading["timing_ms"].values())


def test_only_requested_tasks_run(interp: Interpreter, phantom_png: Path) -> None:
    reading = interp.interpret(str(phantom_png), tasks="classify")
    assert reading["tasks"] == ["classify"] and reading["tb"] is not None
    assert reading["report"] == "" and reading["detections"] == reading["answers"] == []
    assert "report" not in reading["timing_ms"]
    with pytest.raises(ValueError, match="valid tasks"):
        interp.interpret(str(phantom_png), tasks=["classify", "colour"])


def _film(h: int, w: int) -> np.ndarray:
    """A plain film with content (a ramp): what the model reads is scripted, the image only has to be readable."""
    return np.linspace(0.2, 0.8, h * w, dtype=np.float32).reshape(h, w)


def test_boxes_are_pixels_of_the_input_image(interp: Interpreter, monkeypatch: pytest.MonkeyPatch) -> None:
    h, w = 300, 200  # not square: x follows the width, y the height
    right, left = encode_box(0.1, 0.2, 0.45, 0.9), encode_box(0.55, 0.25, 0.9, 0.85)
    text = f"{right} right lung ; <loc0001> broken ; {left} left lung"
    fake = ScriptedGenerate(interp.model, {"detect": text}, special=0.64)
    monkeypatch.setattr(interp.model, "generate", fake)
    reading = interp.interpret(_film(h, w), tasks=["detect"])
    dets = reading["detections"]
    assert [d["label"] for d in dets] == ["right lung", "left lung"]
    # the box the loc tokens encode (quantised to 1/1023), scaled by the input's width and height
    x1, y1, x2, y2 = decode_locs([int(t) for t in LOC_RE.findall(right)])
    assert dets[0]["box"] == pytest.approx([x1 * w, y1 * h, x2 * w, y2 * h], abs=0.01)
    assert dets[0]["box"] == pytest.approx([20, 60, 90, 270], abs=0.3)
    assert dets[1]["box"] == pytest.approx([110, 75, 180, 255], abs=0.3)
    assert [d["score"] for d in dets] == pytest.approx([0.64, 0.64])  # geometric mean of the 4 loc tokens
    assert any("malformed" in x for x in reading["warnings"])  # the broken fragment is reported, the rest kept


def _lung_mask(h: int, w: int, cx: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x - cx * w) / (0.16 * w)) ** 2 + ((y - 0.5 * h) / (0.3 * h)) ** 2 <= 1.0


def test_segmentation_rle_decodes_to_a_mask_of_the_input_size(interp: Interpreter,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    h, w = 90, 130
    right, left = _lung_mask(h, w, 0.3), _lung_mask(h, w, 0.7)
    (_, right_tokens), (_, left_tokens) = segment.encode_objects([right, left])
    pieces = [f"{right_tokens} right lung", f"{left_tokens} left lung"]
    monkeypatch.setattr(interp.model, "generate", ScriptedGenerate(interp.model, {"segment": " ; ".join(pieces)}))
    raw = Interpreter(interp.model, name="tiny-test", refine_masks=False)  # the decoding itself, on a blank film
    reading = json.loads(json.dumps(raw.interpret(_film(h, w), tasks=["segment"])))
    segs = reading["segmentations"]
    assert [s["label"] for s in segs] == ["right lung", "left lung"] and reading["warnings"] == []
    for seg, truth in zip(segs, (right, left)):
        assert seg["mask"]["size"] == [h, w] and isinstance(seg["mask"]["counts"], str)
        mask = rle_decode(seg["mask"])
        assert mask.shape == (h, w)
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou > 0.8, iou
        ys, xs = np.nonzero(truth)
        assert seg["box"] == pytest.approx([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], abs=1.0)
        assert seg["score"] == pytest.approx(0.8)


def test_dicom_input(interp: Interpreter, tmp_path: Path) -> None:
    y, x = np.mgrid[0:80, 0:70]
    arr = (x * 300 + y * 500).astype(np.uint16)
    path = write_dicom(tmp_path / "study.dcm", arr, photometric="MONOCHROME1", ViewPosition="PA")
    reading = interp.interpret(str(path), tasks=["classify"])
    assert reading["image"] == str(path) and reading["image_size"] == [80, 70]
    assert check_reading(reading) == []


def test_bad_inputs_raise_value_errors_naming_them(interp: Interpreter, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ValueError, match="broken.png"):
        interp.interpret(str(broken))
    with pytest.raises(ValueError, match="missing.png"):
        interp.interpret(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="range"):
        interp.interpret(np.full((20, 20), 7.0, np.float32))
    with pytest.raises(ValueError, match="empty list"):
        interp.interpret([])


def test_prior_study_input(interp: Interpreter, phantom_png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ScriptedGenerate(interp.model, {"Generate": "Findings: clear lungs. Impression: normal chest."})
    monkeypatch.setattr(interp.model, "generate", fake)
    prior = _film(70, 80)
    change = vqa.change_question(12)
    reading = interp.interpret(str(phantom_png), tasks=["report", "vqa"], prior=prior, prior_days=12,
                               questions=[change, "Is this chest X-ray normal?"])
    assert reading["prior"] == "<array 70x80>" and reading["warnings"] == []
    assert reading["report"] == "Findings: clear lungs. Impression: normal chest."
    prefix, feats = fake.calls[0]
    assert prefix == report.prompt("report", prior_interval_days=12)
    n = interp.model.tokens_per_image
    assert feats.tokens.shape[1] == 2 * n  # current + prior
    change_answer, normal_answer = reading["answers"]
    assert change_answer["answer"] in ("worsened", "improved", "stayed the same") and change_answer["closed"]
    # without the interval the report cannot compare: single-image prompt and a warning
    fake.calls.clear()
    reading = interp.interpret(str(phantom_png), tasks=["report"], prior=prior)
    assert fake.calls[0][0] == report.prompt("report") and fake.calls[0][1].tokens.shape[1] == n
    assert any("interval is unknown" in w for w in reading["warnings"])


def test_change_question_without_prior_is_a_warning(interp: Interpreter, phantom_png: Path) -> None:
    change = vqa.change_question(3)
    reading = interp.interpret(str(phantom_png), tasks=["vqa"], questions=[change])
    assert reading["answers"][0]["answer"] == "" and reading["answers"][0]["probability"] is None
    assert any("prior" in w for w in reading["warnings"])


def test_single_view_features_are_the_first_slot_of_the_pair(interp: Interpreter) -> None:
    """Slicing the [frontal, prior] encoding must equal encoding the frontal view alone."""
    rng = np.random.default_rng(0)
    a, b = rng.random((64, 64), dtype=np.float32), rng.random((64, 64), dtype=np.float32)
    pair, single = interp.model.encode_images([a, b]), interp.model.encode_images([a])
    n = interp.model.tokens_per_image
    assert np.allclose(pair.tokens[:, :n].numpy(), single.tokens.numpy(), atol=1e-5)


def test_operating_point_from_the_model_folder(tiny_checkpoint: Path, phantom_png: Path) -> None:
    import cxrvlm

    (tiny_checkpoint / "operating_point.json").write_text(json.dumps({"threshold": 0.0}))
    try:
        reading = cxrvlm.load(tiny_checkpoint).interpret(str(phantom_png), tasks=["classify"])
        assert reading["tb"]["threshold"] == 0.0 and reading["tb"]["threshold_source"] == "operating_point.json"
        assert reading["tb"]["label"] == "tuberculosis"  # every probability is >= 0
        (tiny_checkpoint / "operating_point.json").write_text(json.dumps({"threshold": 1.5}))
        with pytest.raises(ValueError, match="operating_point.json"):
            cxrvlm.load(tiny_checkpoint)
    finally:
        (tiny_checkpoint / "operating_point.json").unlink()


def test_frontal_and_lateral_views(interp: Interpreter, phantom_png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ScriptedGenerate(interp.model, {"Generate": "Findings: normal. Impression: normal."})
    monkeypatch.setattr(interp.model, "generate", fake)
    lateral = np.full((70, 50), 0.6, np.float32)
    reading = interp.interpret(str(phantom_png), lateral=lateral, tasks=["report"])
    prefix, feats = fake.calls[0]
    assert prefix == report.prompt("report", lateral=True)
    assert feats.tokens.shape[1] == 2 * interp.model.tokens_per_image
    assert reading["image"] == str(phantom_png) and reading["prior"] is None and reading["warnings"] == []
    for days in ("soon", -5, float("nan")):  # the prior is the earlier film: 0 days or more
        with pytest.raises(ValueError, match="prior_days must be a finite number of days, 0 or more"):
            interp.interpret(str(phantom_png), prior=lateral, prior_days=days)


@pytest.mark.slow
def test_paligemma_backend_reads_too(phantom_png: Path, one_thread: None) -> None:
    """The same reading through the HF PaliGemma backend (tiny, random): the interpreter uses only the shared
    model interface."""
    pytest.importorskip("transformers")
    from cxrvlm.models.paligemma import tiny_paligemma

    reading = Interpreter(tiny_paligemma(max_text_len=256)).interpret(str(phantom_png))
    assert check_reading(reading) == [] and reading["tb"] is not None


def test_masks_are_redrawn_on_the_film_unless_asked_not_to(interp: Interpreter,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoded lung cut short at its base grows back along the film's edge; `refine_masks=False` keeps it cut."""
    h, w = 240, 200
    right = _lung_mask(h, w, 0.3)
    film = np.where(right | _lung_mask(h, w, 0.7), 0.15, 0.75).astype(np.float32)
    short = right.copy()
    short[int(0.68 * h):] = False
    (_, tokens), = segment.encode_objects([short])
    monkeypatch.setattr(interp.model, "generate", ScriptedGenerate(interp.model, {"segment": f"{tokens} right lung"}))

    def iou_of(reader: Interpreter) -> float:
        mask = rle_decode(reader.interpret(film, tasks=["segment"])["segmentations"][0]["mask"])
        return float((mask & right).sum() / (mask | right).sum())

    raw = Interpreter(interp.model, name="tiny-test", refine_masks=False)
    assert iou_of(interp) > iou_of(raw) + 0.03


def test_a_label_head_gives_the_tb_probability_and_every_finding(phantom_png: Path, one_thread: None) -> None:
    import dataclasses

    import torch
    from infer_fixtures import TINY

    from cxrvlm.models import create_model
    from cxrvlm.tasks import labels, verdict

    torch.manual_seed(0)
    model = create_model("cxrvlm-tiny", label_names=list(labels.LABEL_SPACE), **TINY)
    interp = Interpreter(model, name="tiny-head", threshold=0.3)
    reading = interp.interpret(str(phantom_png), tasks=["classify"])
    head = model.label_probs(images=[[interp_pixels(phantom_png)]])[0]
    # (the interpreter reads the film resized and at 8-bit levels, hence the tolerance)
    assert reading["tb"]["probability"] == pytest.approx(head["Tuberculosis"], abs=5e-3)
    assert reading["tb"]["label"] == ("tuberculosis" if head["Tuberculosis"] >= 0.3 else "normal")
    found = {f["label"]: f["probability"] for f in reading["findings"]}
    assert set(found) == {classify_phrase(k) for k in labels.LABEL_SPACE} - {"tuberculosis"}
    assert list(found.values()) == sorted(found.values(), reverse=True)
    assert found["pleural effusion"] == pytest.approx(head["Pleural Effusion"], abs=5e-3)
    paired = interp.interpret(str(phantom_png), prior=np.full((70, 50), 0.6, np.float32), prior_days=3,
                              tasks=["classify", "vqa"])  # the change question encodes both films
    assert paired["tb"]["probability"] == pytest.approx(reading["tb"]["probability"], abs=1e-5)
    told = interp.interpret(str(phantom_png), tasks=["report"])  # the report is checked against the head
    consistency = told["consistency"]
    assert consistency["checked_against"] == "label head" and isinstance(consistency["contradictions"], list)
    assert told["report_source"] == ("templated from the reading" if consistency["contradictions"] else "generated")
    assert verdict.contradictions(told["report"], head, 0.3) == []  # what it gives never contradicts the verdict
    asked = interp.interpret(str(phantom_png), tasks=["classify", "vqa"])
    tb_answer = next(a for a in asked["answers"] if "tuberculosis" in a["question"])
    assert tb_answer["source"] == "label head"
    assert tb_answer["answer"] == ("yes" if asked["tb"]["label"] == "tuberculosis" else "no")
    # a label question in other words is the head's call, and carries the head-answered label questions' figures
    figures = {"n": 9, "accuracy": 0.9, "constant_accuracy": 0.5, "no_better_than_constant": False}
    interp.options = dataclasses.replace(interp.options, question_types={"vqa": {"label": figures, "source": {
        **figures, "accuracy": 0.3, "no_better_than_constant": True}}})
    effusion = interp.interpret(str(phantom_png), tasks=["classify", "vqa"], questions=["Is there a pleural effusion?"])
    answer = effusion["answers"][0]
    called = "pleural effusion" in effusion["verdict"]["called"]
    assert answer["source"] == "label head" and answer["answer"] == ("yes" if called else "no")
    assert answer["validation"]["type"] == "label" and not effusion["warnings"]


def interp_pixels(path: Path) -> np.ndarray:
    from cxrvlm.io.read import read_image

    return read_image(str(path)).pixels


def classify_phrase(label: str) -> str:
    return label.lower()


def test_a_list_of_images_is_a_batch_and_a_bad_one_costs_only_itself(interp: Interpreter, phantom_png: Path,
                                                                       tmp_path: Path) -> None:
    readings = interp.interpret([str(phantom_png), str(tmp_path / "missing.png"), str(phantom_png)],
                                tasks=["classify"])
    assert len(readings) == 3 and readings[0]["image"] == readings[2]["image"] == str(phantom_png)
    assert readings[0]["tb"] is not None and readings[2]["tb"] == readings[0]["tb"]
    assert readings[1]["image"] == str(tmp_path / "missing.png") and "missing.png" in readings[1]["error"]
    with pytest.raises(ValueError, match="a list of images is a batch"):
        interp.interpret([str(phantom_png)], prior=str(phantom_png), prior_days=3)


def test_detection_scores_are_calibrated_with_the_model_s_box_calibration(tiny_checkpoint: Path, phantom_png: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import cxrvlm
    from cxrvlm.metrics.calibration import platt

    raw_interp = cxrvlm.load(tiny_checkpoint, view_gate=None, refine_masks=False)
    box = "<loc0100><loc0050><loc0900><loc0450> right lung"
    monkeypatch.setattr(raw_interp.model, "generate", ScriptedGenerate(raw_interp.model, {"detect": box}))
    raw = raw_interp.interpret(str(phantom_png), tasks=["detect"])["detections"]
    (tiny_checkpoint / "box_calibration.json").write_text(json.dumps({"a": 2.0, "b": 1.0}))
    try:
        calibrated = cxrvlm.load(tiny_checkpoint, view_gate=None, refine_masks=False)
        assert calibrated.options.box_calibration == (2.0, 1.0)
        monkeypatch.setattr(calibrated.model, "generate", ScriptedGenerate(calibrated.model, {"detect": box}))
        got = calibrated.interpret(str(phantom_png), tasks=["detect"])["detections"]
        assert raw and len(got) == len(raw)
        for r, c in zip(raw, got):
            assert c["score"] == pytest.approx(float(platt([r["score"]], 2.0, 1.0)[0]), abs=1e-5)
    finally:
        (tiny_checkpoint / "box_calibration.json").unlink()


def test_a_report_copying_one_training_patients_text_is_never_given(phantom_png: Path, one_thread: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import torch
    from infer_fixtures import TINY

    from cxrvlm.metrics.memorisation import CopyGuard, CopyIndex
    from cxrvlm.models import create_model
    from cxrvlm.tasks import labels

    copied = ("Findings: a 54 year old man from the night shift with fever since tuesday had a cavity in the right "
              "upper lobe. Impression: Tuberculosis.")
    guard = CopyGuard.from_index(CopyIndex([copied, "Findings: Clear lungs. Impression: Normal."]))
    torch.manual_seed(0)
    with_head = create_model("cxrvlm-tiny", label_names=list(labels.LABEL_SPACE), **TINY)
    without_head = create_model("cxrvlm-tiny", **TINY)
    for model, source in ((with_head, "templated from the reading"), (without_head, "withheld")):
        interp = Interpreter(model, name="tiny", threshold=0.3)
        interp.options = dataclasses.replace(interp.options, copy_guard=guard)
        monkeypatch.setattr(model, "generate", ScriptedGenerate(model, {"Generate a medical report": copied}))
        reading = interp.interpret(str(phantom_png), tasks=["report"])
        assert reading["report_source"] == source and "night shift" not in json.dumps(reading)
        if source == "withheld":
            assert any("withheld" in w and "copies a run of 12" in w for w in reading["warnings"])
        else:
            assert any("copies a run of 12" in c for c in reading["consistency"]["contradictions"])


def test_each_closed_answer_says_how_its_question_type_fared_on_validation(phantom_png: Path, one_thread: None,
                                                                           tiny_checkpoint: Path) -> None:
    import cxrvlm
    from cxrvlm.infer.html import render_html
    from cxrvlm.models.question_types import QUESTION_TYPES_FILE, write_question_types

    figures = {"baseline_split": "train", "types": {
        "view": {"n": 40, "accuracy": 0.9, "baseline_answer": "pa", "baseline_accuracy": 0.6},
        "lung_size": {"n": 8, "accuracy": 0.5, "baseline_answer": "left", "baseline_accuracy": 0.5,
                      "at_or_below_baseline": True}}}
    write_question_types({"vqa": figures}, "val", tiny_checkpoint / QUESTION_TYPES_FILE)
    try:
        interp = cxrvlm.load(tiny_checkpoint, view_gate=None)
        reading = interp.interpret(str(phantom_png), tasks=["vqa"])
    finally:
        (tiny_checkpoint / QUESTION_TYPES_FILE).unlink()
    check_reading(reading)
    by_type = {a.get("validation", {}).get("type"): a for a in reading["answers"]}
    assert by_type["view"]["validation"] == {"type": "view", "n": 40, "accuracy": 0.9, "constant_accuracy": 0.6,
                                             "no_better_than_constant": False}
    assert by_type["lung_size"]["validation"]["no_better_than_constant"] is True
    warned = [w for w in reading["warnings"] if "do not rely" in w]
    assert len(warned) == 1 and "'lung_size'" in warned[0] and "'left'" in warned[0]
    page = render_html(reading)
    assert "0.90 right of 40 view questions (one fixed answer: 0.60)" in page
    assert "0.50 right of 8 lung_size questions (one fixed answer: 0.50): not better than a fixed answer" in page
