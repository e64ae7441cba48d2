"""The answers' validation figures per question type beside a model: written whole, read back, a bad file named."""
from __future__ import annotations

import json

import pytest

from cxrvlm.models.question_types import QUESTION_TYPES_FILE, saved_question_types, write_question_types

BY_TYPE = {"baseline_split": "train", "types": {
    "view": {"n": 10, "accuracy": 0.8, "baseline_answer": "pa", "baseline_accuracy": 0.6,
             "at_or_below_baseline": False, "predicted": {"pa": 7, "ap": 3}, "truth": {"pa": 6, "ap": 4}},
    "change": {"n": 2, "accuracy": 0.0, "baseline_answer": "worsened", "baseline_accuracy": 0.5,
               "at_or_below_baseline": True, "predicted": {"improved": 2}, "truth": {"worsened": 1, "same": 1}}}}


def test_the_summary_reads_back_with_what_a_reading_needs(tmp_path) -> None:
    write_question_types({"vqa": BY_TYPE}, "val", tmp_path / QUESTION_TYPES_FILE)
    types = saved_question_types(tmp_path)["vqa"]
    assert types["change"] == {"n": 2, "accuracy": 0.0, "constant_answer": "worsened", "constant_accuracy": 0.5,
                               "no_better_than_constant": True}
    assert types["view"]["no_better_than_constant"] is False
    assert json.loads((tmp_path / QUESTION_TYPES_FILE).read_text())["measured_on"] == "val"
    assert saved_question_types(tmp_path / "elsewhere") == {} and saved_question_types(None) == {}


def test_a_file_without_the_numbers_is_a_clear_error(tmp_path) -> None:
    (tmp_path / QUESTION_TYPES_FILE).write_text(json.dumps({"tasks": {"vqa": {"types": {"view": {
        "n": 0, "accuracy": 0.5, "no_better_than_constant": False}}}}}))
    with pytest.raises(ValueError, match=f"{QUESTION_TYPES_FILE}: not a question-type summary"):
        saved_question_types(tmp_path)
    (tmp_path / QUESTION_TYPES_FILE).write_text("{")
    with pytest.raises(ValueError, match="not a question-type summary"):
        saved_question_types(tmp_path)
