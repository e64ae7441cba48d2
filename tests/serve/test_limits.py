"""`cxrvlm serve` under bad input and load (issue 17): the body limit holds while the upload streams, a bad prior is
blamed on the prior, a client's file name is never a path, bad fields are 422s with the reason, the pixel limit, the
queue bound and the wait timeout are refused with their reason, and the overlay is drawn in the reading's turn."""
from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
import tracemalloc

import pytest
from fixtures_images import gradient, write_png

from cxrvlm.serve.limits import MB, Gate, Limits, UploadError

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

BOUNDARY = "cxrvlm-test-boundary"


def _client(interpreter, **limits):
    from fastapi.testclient import TestClient

    from cxrvlm.serve.app import create_app

    return TestClient(create_app(interpreter, Limits(**limits)))


@pytest.fixture(scope="module")
def client(interpreter):
    return _client(interpreter)


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> bytes:
    return write_png(tmp_path_factory.mktemp("img") / "chest.png", gradient(96, 72)).read_bytes()


def _post(client, files: dict, **form):
    return client.post("/interpret", files=files, data={"tasks": "classify", **form})


# ---------------------------------------------------------------------------------------------- row 2: the body
def _stream(app, total: int, chunk: int, content_length: bool) -> tuple[int, dict, int]:
    """POST a multipart body of one `total`-byte file to the ASGI app as a server would: in `chunk`-byte messages,
    with or without Content-Length. Returns (status, JSON answer, bytes the app took from the stream)."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    block = b"x" * chunk
    messages = [head] + [block] * (total // chunk) + [tail]
    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    if content_length:
        headers.append((b"content-length", str(sum(map(len, messages))).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/interpret", "raw_path": b"/interpret", "root_path": "", "query_string": b"",
             "headers": headers, "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000)}
    taken, sent = 0, []

    async def receive():
        nonlocal taken
        if not messages:
            await asyncio.sleep(3600)  # a client that is still there; the app never waits for this
        body = messages.pop(0)
        taken += len(body)
        return {"type": "http.request", "body": body, "more_body": bool(messages)}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), taken


class _CountingSpool(tempfile.SpooledTemporaryFile):
    """The form parser's spool file, counting what is written to it (memory first, then disk)."""

    written = 0

    def write(self, data):
        _CountingSpool.written += len(data)
        return super().write(data)


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
def test_a_100_mb_upload_is_refused_while_it_streams(interpreter, monkeypatch, content_length) -> None:
    from cxrvlm.serve.app import create_app

    monkeypatch.setattr("starlette.formparsers.SpooledTemporaryFile", _CountingSpool)
    _CountingSpool.written = 0
    app = create_app(interpreter, Limits(max_upload_mb=20))
    tracemalloc.start()
    try:
        status, answer, taken = _stream(app, 100 * MB, MB, content_length)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413 and "larger than the server's limit of 20 MB" in answer["error"]
    if content_length:  # refused on its header: nothing read
        assert taken == 0 and _CountingSpool.written == 0
    else:  # refused as the limit passed: the limit and one chunk read, at most the limit spooled
        assert 20 * MB < taken <= 21 * MB + 1024
        assert _CountingSpool.written <= 20 * MB
    assert peak < 8 * MB  # never the body in memory: chunks, and the spool's first 1 MB before it goes to disk


def test_an_upload_within_the_limit_streams_to_the_reading(interpreter, png) -> None:
    client = _client(interpreter, max_upload_mb=1)
    assert _post(client, {"file": ("chest.png", png)}).status_code == 200


# ----------------------------------------------------------------------------------- row 5: a bad prior is the prior's
@pytest.mark.parametrize("prior", [b"garbage, not an image", b"\xff\xd8\xff\xe0\x00", "truncated"],
                         ids=["garbage", "five-byte-jpeg", "truncated-png"])
def test_a_bad_prior_is_a_400_naming_the_prior(client, png, prior) -> None:
    data = png[: len(png) // 2] if prior == "truncated" else prior
    response = _post(client, {"file": ("current.png", png), "prior": ("earlier.jpg", data)}, prior_days="30")
    assert response.status_code == 400, response.text
    assert response.json()["image"] == "earlier.jpg"
    assert response.json()["error"].startswith("earlier.jpg (prior): ")
    assert "current.png" not in response.json()["error"]


# ------------------------------------------------------------------------------ row 8: a client's name is not a path
def test_an_upload_named_prior_or_with_a_300_character_name_is_read(client, png) -> None:
    both = _post(client, {"file": ("prior", png), "prior": ("prior", png)}, prior_days="7")
    assert both.status_code == 200, both.text
    assert both.json()["image"] == "prior" and both.json()["prior"] == "prior"
    long = "a" * 296 + ".png"
    reading = _post(client, {"file": (long, png)})
    assert reading.status_code == 200, reading.text
    name = reading.json()["image"]
    assert len(name) == 100 and name.startswith("aaaa") and name.endswith("...aaaaaaaaaaaaa.png")


def test_client_names_are_cut_and_cleaned() -> None:
    from cxrvlm.serve.app import client_name

    assert client_name("../../etc/passwd") == "passwd" and client_name("..") == "upload"
    assert client_name("C:\\films\\chest\x00.png") == "chest.png" and client_name(None) == "upload"


# --------------------------------------------------------------------------------- rows 9 and 10: the form's fields
@pytest.mark.parametrize("days", ["-5", "nan", "inf"])
def test_a_negative_or_infinite_interval_is_a_422_with_the_reason(client, png, days) -> None:
    response = _post(client, {"file": ("current.png", png), "prior": ("earlier.png", png)}, prior_days=days)
    assert response.status_code == 422
    assert response.json()["error"].startswith("prior_days: must be a finite number of days, 0 or more, got ")


def test_a_question_too_long_or_too_many_is_a_422_naming_the_limit(client, png) -> None:
    long = _post(client, {"file": ("chest.png", png)}, tasks="vqa", question=["Is this normal?", "x" * 2000])
    assert long.status_code == 422
    assert long.json()["error"] == "question 2: 2,000 characters, more than the limit of 300"
    many = _post(client, {"file": ("chest.png", png)}, tasks="vqa", question=[f"Question {i}?" for i in range(9)])
    assert many.status_code == 422
    assert many.json()["error"] == "question: 9 questions, more than the limit of 8 per request"
    ok = _post(client, {"file": ("chest.png", png)}, tasks="vqa", question=["y" * 300])
    assert ok.status_code == 200, ok.text


# ------------------------------------------------------------------------------------------------------ pixels
def test_an_image_over_the_pixel_limit_is_a_400_before_it_is_decoded(interpreter, png) -> None:
    client = _client(interpreter, max_pixels=1000)
    response = _post(client, {"file": ("chest.png", png)})
    assert response.status_code == 400
    assert response.json()["error"] == ("chest.png (file): image declares 96 x 72 = 6,912 pixels, more than the "
                                        "limit of 1,000 (possible decompression bomb; raise max_pixels if the file "
                                        "is trusted)")


# ------------------------------------------------------------------------------------ the queue bound and the wait
def test_a_full_queue_is_a_503_with_retry_after_at_once(interpreter, png) -> None:
    client = _client(interpreter, max_queue=0)
    with client.app.state.gate.turn(time.monotonic()):  # a reading in progress, none may wait
        busy = _post(client, {"file": ("chest.png", png)})
    assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1
    assert busy.json()["error"].startswith("the server is busy: 0 requests are already waiting (the limit is 0)")
    assert _post(client, {"file": ("chest.png", png)}).status_code == 200  # its turn free again


def test_a_request_that_waited_past_the_timeout_is_a_503(interpreter, png) -> None:
    client = _client(interpreter, timeout=0.05)
    with client.app.state.gate.turn(time.monotonic()):
        late = _post(client, {"file": ("chest.png", png)})
    assert late.status_code == 503 and "Retry-After" in late.headers
    assert "no turn for this reading within the 0.05 s timeout" in late.json()["error"]


def test_the_gate_counts_the_waiting_and_refuses_one_more() -> None:
    gate = Gate(max_queue=1, timeout=60)
    entered = threading.Event()

    def wait_for_a_turn() -> None:
        with gate.turn(time.monotonic()):
            entered.set()

    with gate.turn(time.monotonic()):
        waiter = threading.Thread(target=wait_for_a_turn)
        waiter.start()
        while gate.waiting < 1:  # the waiter is queued behind the reading
            time.sleep(0.001)
        with pytest.raises(UploadError, match="1 requests are already waiting") as refused, \
                gate.turn(time.monotonic()):
            pass
        assert refused.value.status == 503 and "Retry-After" in refused.value.headers
    waiter.join(10)
    assert entered.is_set() and gate.waiting == 0
    # the turn held, and a request that has waited 100 s already
    with pytest.raises(UploadError, match="within the 60 s timeout"), gate.turn(time.monotonic()), \
            gate.turn(time.monotonic() - 100):
        pass


def test_the_overlay_is_drawn_in_the_readings_turn(client, png, monkeypatch) -> None:
    from cxrvlm.serve import app as app_module

    drawn = []

    def checked(draw):
        def drawing(pixels, reading, **options):
            drawn.append((draw.__name__, client.app.state.gate._turn.locked()))
            return draw(pixels, reading, **options)
        return drawing

    for name in ("render_overlay", "overlay_layers"):  # the reading page's picture; the JSON's overlay and layers
        monkeypatch.setattr(app_module, name, checked(getattr(app_module, name)))
    assert _post(client, {"file": ("chest.png", png)}, overlay="true", overlay_layers="true").status_code == 200
    assert client.post("/interpret?format=html", files={"file": ("chest.png", png)}).status_code == 200
    assert drawn == [("overlay_layers", True), ("render_overlay", True)]


def test_bad_limits_are_refused_naming_the_limit() -> None:
    with pytest.raises(ValueError, match="max_queue must be non-negative, got -1"):
        Limits(max_queue=-1)
    with pytest.raises(ValueError, match="timeout must be positive, got nan"):
        Limits(timeout=float("nan"))
    with pytest.raises(ValueError, match="max_questions must be a whole number, got 2.5"):
        Limits(max_questions=2.5)
    with pytest.raises(ValueError, match="max_pixels must be at most the image reader's limit of 50,000,000"):
        Limits(max_pixels=60_000_000)


def test_health_reports_the_limits(client) -> None:
    assert client.get("/health").json()["limits"]["max_question_chars"] == 300
