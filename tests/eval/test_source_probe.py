"""The source probe: a linear probe on pooled image features, cross-validated, balanced accuracy vs chance."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrvlm.cli import main
from cxrvlm.data.split import read_split
from cxrvlm.eval.source_probe import balanced_accuracy, cross_validated, films, probe_labels, stratified_folds


def test_probe_tells_separable_sources_apart_and_not_shuffled_ones() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 8)) + 3.0 * np.eye(8)[y]  # each source shifts one feature
    assert balanced_accuracy(y, cross_validated(x, y, 5)) > 0.95
    noise = rng.normal(size=(60, 8))
    assert balanced_accuracy(y, cross_validated(noise, y, 5)) < 0.6


def test_folds_are_stratified_and_balanced_accuracy_weighs_classes_equally() -> None:
    y = np.array([0] * 10 + [1] * 5)
    fold = stratified_folds(y, 5)
    assert all(np.bincount(y[fold == f]).tolist() == [2, 1] for f in range(5))
    assert balanced_accuracy(y, np.zeros(15, dtype=int)) == 0.5  # always the big class: chance, not 2/3


def test_sources_with_fewer_films_than_folds_are_left_out() -> None:
    x = np.random.default_rng(1).normal(size=(13, 4))
    out = probe_labels(x, ["a"] * 6 + ["b"] * 5 + ["c"] * 2, k=5)
    assert out["left_out"] == ["c"] and out["chance"] == 0.5 and out["n"] == 11
    assert probe_labels(x, ["a"] * 11 + ["c"] * 2, k=5)["balanced_accuracy"] is None


def test_command_probes_a_tiny_model_on_the_curated_fixture(curated: Path, tiny_model_dir: Path,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "probe.json"
    assert main(["source-probe", "--model", str(tiny_model_dir), "--data", str(curated), "--split", "train",
                 "--folds", "2", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == doc
    n_films = len(films(read_split(curated, "train")))
    assert sum(doc["source"]["films"].values()) == n_films and set(doc["source"]["films"]) == {"tb", "covid"}
    assert 0.0 <= doc["source"]["balanced_accuracy"] <= 1.0 and doc["source"]["chance"] == 0.5
