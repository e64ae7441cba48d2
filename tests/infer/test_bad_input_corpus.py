"""The bad-input corpus (`tests/bad_inputs.py`) through the three front doors: the CLI on a batch folder, the Python
API and the HTTP server. Every item gives a reading or a clear error naming it: never a traceback, another exception
type or a 5xx, and the rest of the batch is read."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import CORPUS, write_corpus
from fixtures_images import gradient, write_png

import cxrvlm
from cxrvlm.cli import main

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

GOOD = "good.png"
TASKS = "classify"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    paths = write_corpus(folder)
    paths[GOOD] = write_png(folder / GOOD, gradient(80, 64))
    return paths


@pytest.fixture(scope="module")
def interp(one_thread: None) -> Any:
    return cxrvlm.load("cxrvlm-tiny")


@pytest.fixture(scope="module")
def client(interp: Any) -> Any:
    from fastapi.testclient import TestClient

    from cxrvlm.serve.app import create_app

    return TestClient(create_app(interp))


@pytest.fixture(scope="module")
def cli(corpus: dict[str, Path], one_thread: None) -> dict[str, Any]:
    """One `cxrvlm interpret FOLDER` over the corpus and a good image: exit status, results by file name, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["interpret", str(corpus[GOOD].parent), "--tasks", TASKS, "--threads", "1"])
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    return {"status": status, "results": {Path(r["image"]).name: r for r in results}, "stderr": err.getvalue()}


def test_the_batch_finishes_with_status_1_and_no_traceback(cli: dict[str, Any]) -> None:
    assert cli["status"] == 1
    assert set(cli["results"]) == set(CORPUS) | {GOOD}
    assert "error" not in cli["results"][GOOD] and "findings" in cli["results"][GOOD]
    assert "Traceback" not in cli["stderr"]
    bad = [name for name, item in CORPUS.items() if item.error]
    error_lines = [line for line in cli["stderr"].splitlines() if ": error: " in line]
    assert len(error_lines) == len(bad)
    summary = cli["stderr"].strip().splitlines()[-1]
    assert summary.startswith(f"{len(CORPUS) + 1} film(s): ") and f", {len(bad)} failed" in summary


def _check_reading(reading: dict[str, Any], name: str) -> None:
    assert "error" not in reading, reading.get("error")
    assert Path(reading["image"]).name == name
    h, w = reading["image_size"]
    quality = reading["quality"]
    assert h >= 1 and w >= 1
    # read: findings; or refused for its content (tiny, one grey level) with the reasons and no verdict
    assert (quality["assessable"] and reading["findings"]) or \
        (not quality["assessable"] and quality["reasons"] and reading["tb"] is None), quality


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_item_gives_a_reading_or_a_clear_error(name: str, corpus: dict[str, Path], cli: dict[str, Any],
                                                      interp: Any, client: Any) -> None:
    expected, path = CORPUS[name].error, corpus[name]
    # (a) the CLI: its line of the batch
    result = cli["results"][name]
    if expected is None:
        _check_reading(result, name)
    else:
        assert name in result["error"] and expected in result["error"], result
        assert f"{path}: error: " in cli["stderr"]
    # (b) the Python API: a reading or a ValueError naming the file, never another exception type
    if expected is None:
        _check_reading(interp.interpret(str(path), tasks=[TASKS]), name)
    else:
        with pytest.raises(ValueError) as info:
            interp.interpret(str(path), tasks=[TASKS])
        assert str(path) in str(info.value) and expected in str(info.value)
    # (c) the server: a 200 reading or a 4xx {"image", "error"} naming the upload, never a 5xx
    response = client.post("/interpret", files={"file": (name, path.read_bytes())}, data={"tasks": TASKS})
    body = response.json()
    if expected is None:
        assert response.status_code == 200, body
        _check_reading(body, name)
    else:
        assert 400 <= response.status_code < 500, body
        assert body["image"] == name and name in body["error"]
        if path.stat().st_size:  # the server refuses an empty upload in its own words
            assert expected in body["error"]
