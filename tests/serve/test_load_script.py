"""`scripts/load.py` against a real `cxrvlm serve` subprocess on loopback, 2 clients x 3 requests: it starts the server,
sends good and bad uploads, prints its summary and passes. Its pure parts are checked without a server."""
from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "load.py"


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("load_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_plan_has_the_bad_share_and_every_bad_kind(load) -> None:
    kinds = load.requests_by_kind(b"png", 1 << 20, "classify")
    order = load.plan(50, 0.2, kinds, random.Random(0))
    bad = [k for k in order if kinds[k][0]]
    assert len(order) == 50 and len(bad) == 10 and len(set(bad)) == 10  # each bad kind once
    assert len(kinds["too-large"][1]["file"][1]) == 2 << 20


def test_percentiles_and_the_rss_line(load) -> None:
    assert load.pct([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0 and load.pct([1.0] * 19 + [9.0], 0.95) == 1.0
    line = load._rss_line([100 * 1024] * 4 + [110 * 1024] * 4, 0.5)
    assert "first quarter 100 MB, last quarter 110 MB (+10.0%); peak 110 MB" in line


def test_a_small_run_against_a_real_server_passes(load, capsys) -> None:
    status = load.main(["--clients", "2", "--requests", "3", "--bad-share", "0.5", "--warmup", "0",
                        "--max-seconds", "60", "--threads", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "requests: 6 answered (2 good, 4 bad)" in out  # round(3 * 0.5) = 2 bad per client
    assert "5xx responses (final): 0" in out and out.rstrip().endswith("PASS")
    assert "server RSS:" in out
