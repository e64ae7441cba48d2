"""The TB operating point saved beside a model: one reader (every nested form) and one atomic writer."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cxrvlm.models.operating_point import (OPERATING_POINT_FILE, read_operating_point, saved_threshold,
                                           write_operating_point)


@pytest.mark.parametrize("doc", [{"threshold": 0.25, "n": 3}, {"operating_point": {"threshold": 0.25, "n": 3}},
                                 {"tb": {"threshold": 0.25, "n": 3}}, {"threshold": 0.25, "n": 3, "tb": {"x": 1}}])
def test_every_form_reads_the_same_threshold(tmp_path, doc) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(doc))
    op = read_operating_point(path)
    assert op["threshold"] == 0.25 and op["n"] == 3 and op["source_file"] == str(path)


def test_an_integer_threshold_reads_as_a_float(tmp_path) -> None:
    (tmp_path / OPERATING_POINT_FILE).write_text(json.dumps({"threshold": 1}))
    assert read_operating_point(tmp_path)["threshold"] == 1.0 and isinstance(saved_threshold(tmp_path), float)


@pytest.mark.parametrize("text, message", [
    ("{", "not a readable JSON file"), ('{"threshold": 1.5}', "must be a probability in \\[0, 1\\], got 1.5"),
    ('{"threshold": -0.1}', "got -0.1"), ('{"threshold": true}', "got True"), ('{"threshold": "0.3"}', "got '0.3'"),
    ('{"tb": {"p": 0.2}}', "got None"), ("[0.3]", "expected a JSON object")])
def test_a_bad_file_is_an_error_naming_it(tmp_path, text, message) -> None:
    path = tmp_path / "op.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        read_operating_point(path)
    assert str(path) in str(e.value)


def test_a_missing_file_is_an_error_but_a_model_without_one_has_no_threshold(tmp_path) -> None:
    with pytest.raises(ValueError, match="missing.json: not a readable JSON file"):
        read_operating_point(tmp_path / "missing.json")
    assert saved_threshold(tmp_path) is None and saved_threshold(None) is None
    (tmp_path / OPERATING_POINT_FILE).write_text(json.dumps({"threshold": 2}))
    with pytest.raises(ValueError, match=OPERATING_POINT_FILE):
        saved_threshold(tmp_path)


def test_write_then_read_round_trips_as_strict_json(tmp_path) -> None:
    op = {"threshold": np.float32(0.375), "auroc": float("nan"), "n": np.int64(38), "chosen_on": "val"}
    (tmp_path / "model").mkdir()
    path = write_operating_point(op, tmp_path / "model")  # into a model folder
    assert path == tmp_path / "model" / OPERATING_POINT_FILE
    assert write_operating_point(op, tmp_path / "new" / "op.json").is_file()  # a file in a folder made for it
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")) == \
        {"threshold": 0.375, "auroc": None, "n": 38, "chosen_on": "val"}
    assert saved_threshold(tmp_path / "model") == 0.375
    assert not list((tmp_path / "model").glob("*.tmp"))  # the temporary file was renamed, not left behind
    write_operating_point({"threshold": 0.5}, path)  # over an existing file
    assert read_operating_point(path)["threshold"] == 0.5 and not math.isnan(read_operating_point(path)["threshold"])


@pytest.mark.parametrize("op", [{"threshold": 1.2}, {}, {"threshold": float("nan")}])
def test_an_invalid_point_is_not_written(tmp_path, op) -> None:
    path = tmp_path / OPERATING_POINT_FILE
    path.write_text(json.dumps({"threshold": 0.3}))
    with pytest.raises(ValueError, match="'threshold' must be a probability"):
        write_operating_point(op, path)
    assert read_operating_point(path)["threshold"] == 0.3  # the saved point is untouched
