"""`cxrvlm eval` end to end with a tiny random model: every task in metrics.json, malformed outputs counted, the
report written, the TB operating point chosen on val and applied unchanged to test."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cxrvlm.cli import main
from cxrvlm.models.copy_guard import saved_copy_guard
from cxrvlm.models.question_types import saved_question_types
from cxrvlm.tasks import get_task


@pytest.fixture(scope="module")
def eval_out(curated: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "test"
    code = main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--split", "test", "--out", str(out),
                 "--max-new-tokens", "10", "--batch-size", "16", "--fast-metrics", "--no-progress"])
    assert code == 0
    return out


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_metrics_json_has_every_task_and_counts(eval_out: Path, curated: Path) -> None:
    doc = json.loads((eval_out / "metrics.json").read_text())
    rows = [json.loads(line) for line in (curated / "test.jsonl").read_text().splitlines()]
    # the image-level labels are read by a label head, which this model does not have: left out
    rows = [r for r in rows if not get_task(r["task"]).by_head]
    tasks = {r["task"] for r in rows}
    assert set(doc["tasks"]) == tasks == {"classify", "detect", "findings_then_report", "ground", "report",
                                          "segment", "vqa"}
    records = _records(eval_out)
    assert len(records) == len(rows)
    for task, r in doc["tasks"].items():
        mine = [x for x in records if x["task"] == task]
        assert r["n"] + r["n_skipped"] == len(mine)
        # malformed outputs: exactly the records whose generated text the task's parser rejected
        assert r["n_invalid"] == sum(not x["valid"] for x in mine) == doc["malformed"][task]
        assert sum(r["invalid_reasons"].values()) == r["n_invalid"]
        assert r["metrics"], task
    # a random model's 10-token outputs cannot be valid boxes / masks
    assert doc["tasks"]["detect"]["n_invalid"] == doc["tasks"]["detect"]["n"] > 0
    assert doc["tasks"]["classify"]["metrics"]["tb_n"] == sum(
        1 for x in records if x["task"] == "classify" and x["target"]["kind"] == "tb")


def test_report_files_exist_and_link_their_figures(eval_out: Path) -> None:
    html = (eval_out / "report.html").read_text()
    md = (eval_out / "report.md").read_text()
    for task in ("classify", "detect", "segment", "report", "vqa"):
        assert f"<h3>{task}</h3>" in html and f"## {task}" in md
    figures = re.findall(r'<img src="([^"]+)"', html)
    assert "figures/tb_roc.png" in figures and "figures/examples.png" in figures
    assert any(f.startswith("figures/confusion_") for f in figures)
    for f in figures:
        assert (eval_out / f).stat().st_size > 500, f
    assert "Sample reports" in html


def test_threshold_chosen_on_val_is_applied_to_test(eval_out: Path, curated: Path, tiny_model_dir: Path) -> None:
    from cxrvlm.data.split import read_split
    from cxrvlm.eval.operating_point import tb_scores
    from cxrvlm.metrics import choose_threshold
    from cxrvlm.models import load_model

    doc = json.loads((eval_out / "metrics.json").read_text())
    op = doc["operating_point"]
    assert op["chosen_on"] == "val"
    y, s = tb_scores(load_model(tiny_model_dir), read_split(curated, "val"), progress=False)
    assert op["threshold"] == pytest.approx(choose_threshold(y, s, 0.9))
    assert json.loads((eval_out / "operating_point.json").read_text())["applied_to"] == "test"
    tb = [x for x in _records(eval_out) if x["task"] == "classify" and x["target"]["kind"] == "tb"]
    assert tb
    for x in tb:  # the test answers follow the val threshold, not the test data's own best cut
        p = x["prediction"]["probs"]["tuberculosis"]
        assert x["prediction"]["label"] == ("tuberculosis" if p >= op["threshold"] else "normal")
    assert doc["tasks"]["classify"]["metrics"]["tb_threshold"] == pytest.approx(op["threshold"])


def test_unknown_task_and_missing_split_are_clear_errors(curated: Path, tiny_model_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--out", str(tmp_path),
                 "--tasks", "classify,nonsense"]) == 2
    assert "unknown task 'nonsense'" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "test.jsonl not found" in capsys.readouterr().err


def test_operating_point_file_is_reused_and_checked(eval_out: Path, curated: Path, tiny_model_dir: Path,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    saved = json.loads((eval_out / "operating_point.json").read_text())
    out = tmp_path / "reuse"
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--split", "val", "--out", str(out),
                 "--tasks", "classify", "--threshold-from", str(eval_out / "operating_point.json"),
                 "--max-new-tokens", "4", "--fast-metrics", "--no-progress"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["tasks"]) == {"classify"}
    assert doc["operating_point"]["threshold"] == saved["threshold"]
    assert doc["operating_point"]["source_file"].endswith("operating_point.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"threshold": 3}))
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--out", str(out),
                 "--threshold-from", str(bad)]) == 2
    assert "'threshold' must be a probability" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--split", "val", "--out", str(out),
                 "--tasks", "vqa", "--limit", "2", "--threshold-from", "none", "--max-new-tokens", "2",
                 "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["operating_point"] is None
    assert not (out / "operating_point.json").exists()  # the earlier run's file is not left to mislead


def test_perturb_is_parsed_and_recorded_and_a_bad_one_is_a_clear_error(curated: Path, tiny_model_dir: Path,
                                                                       tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "moved"
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--out", str(out), "--tasks",
                 "classify", "--perturb", "zoom=0.93,dx=0.03", "--fast-metrics", "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["perturb"] == {"zoom": 0.93, "dx": 0.03, "dy": 0.0}
    with pytest.raises(SystemExit):
        main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--out", str(out),
              "--perturb", "tilt=3"])
    assert "unknown key 'tilt'" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(curated), "--out", str(out), "--tasks",
                 "segment", "--perturb", "dx=0.03", "--no-progress"]) == 2
    assert "hold coordinates" in capsys.readouterr().err


def test_metrics_per_source_per_question_type_and_other_disease_films(eval_out: Path, curated: Path) -> None:
    doc = json.loads((eval_out / "metrics.json").read_text())
    for task, r in doc["tasks"].items():
        assert sum(s["n"] for s in r["by_source"].values()) == r["n"], task
        assert set(r["by_source"]) <= {"tb", "covid"}, task
    typed = doc["tasks"]["vqa"]["by_type"]
    assert typed["baseline_split"] == "train" and "normal" in typed["types"]
    assert sum(t["n"] for t in typed["types"].values()) == doc["tasks"]["vqa"]["metrics"]["closed_n"]
    od = doc["tasks"]["classify"]["other_disease"]
    films = [json.loads(line) for line in (eval_out / "other_disease.jsonl").read_text().splitlines()]
    assert od["n"] == len(films) > 0 and od["threshold"] == doc["operating_point"]["threshold"]
    assert od["n_read_as_positive"] == sum(f["prediction"]["label"] == "tuberculosis" for f in films)
    md = (eval_out / "report.md").read_text()
    assert "### classify: per source" in md and "### vqa: close-ended answers per question type" in md
    assert "### Films with another disease read as tuberculosis" in md


def test_memorisation_of_generated_reports_against_the_training_reports(eval_out: Path) -> None:
    doc = json.loads((eval_out / "metrics.json").read_text())
    records = [json.loads(line) for line in (eval_out / "predictions.jsonl").read_text().splitlines()]
    copied = doc["tasks"]["report"]["memorisation"]
    assert copied["n"] == sum(r["task"] == "report" and bool(r.get("generated")) for r in records)
    assert copied["training_documents"] > 0 and 0 <= copied["n_copied"] <= copied["n"]
    assert copied["before_checks"]["n"] == copied["n"]  # what the model said, before any replacement
    assert "memorisation" not in doc["tasks"]["classify"]
    md = (eval_out / "report.md").read_text()
    assert "### report: copies of one training patient's text" in md
    assert f"| given | {copied['n']} | {copied['n_copied']} |" in md
    types = saved_question_types(eval_out)  # the answers' figures per question type, for `cxrvlm ship`
    assert types["vqa"] and all(t["n"] == doc["tasks"]["vqa"]["by_type"]["types"][k]["n"]
                                for k, t in types["vqa"].items())
    guard = saved_copy_guard(eval_out)  # the training split's guard, for `cxrvlm ship` to put beside the model
    assert guard is not None and len(guard.hashes) > 0
