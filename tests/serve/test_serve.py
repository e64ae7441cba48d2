"""`cxrvlm serve`: the HTTP API gives the reading JSON of `cxrvlm interpret` for an uploaded PNG or DICOM, refuses
bad uploads with a reason that names the file and goes on serving, and the web page works without the network.
A tiny random model reads; its answers are garbage, the contract is what is tested."""
from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_images import gradient, write_dicom, write_png
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

FAST = "classify,detect"


@pytest.fixture(scope="module")
def client(interpreter):
    from fastapi.testclient import TestClient

    from cxrvlm.serve.app import create_app
    from cxrvlm.serve.limits import Limits

    return TestClient(create_app(interpreter, Limits(max_upload_mb=0.5)))


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> bytes:
    path = write_png(tmp_path_factory.mktemp("img") / "chest.png", gradient(96, 72))
    return path.read_bytes()


def _post(client, name: str, data: bytes, **form):
    return client.post("/interpret", files={"file": (name, data)}, data={"tasks": FAST, **form})


def test_health_names_the_model_and_the_notice(client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"] == "tiny"
    assert "Not a diagnosis" in body["notice"] and "classify" in body["tasks"]
    schema = client.get("/openapi.json").json()
    assert "/interpret" in schema["paths"] and "/readings.csv" in schema["paths"]
    reading = schema["components"]["schemas"]["Reading"]  # every field of the reading, documented
    assert {"quality", "verdict", "tb", "saliency", "report_source", "detections"} <= set(reading["properties"])
    assert "[x1, y1, x2, y2]" in schema["components"]["schemas"]["Detection"]["properties"]["box"]["description"]


def test_api_docs_work_offline(client) -> None:
    """/docs and /redoc load every script and style from this server, none from a CDN."""
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200 and "cxrvlm" in html.text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ["']([^"']+)["']""", html.text)
        urls = [u for pair in urls for u in pair if u]
        assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
        for url in urls:
            assert client.get(url).status_code == 200, url


def test_an_uploaded_png_gives_the_interpret_json(client, png) -> None:
    reading = _post(client, "chest.png", png).json()
    assert reading["image"] == "chest.png" and reading["image_size"] == [96, 72]
    assert reading["notice"] == "Research use only. Not a diagnosis."
    assert 0.0 <= reading["tb"]["probability"] <= 1.0 and reading["tasks"] == ["classify", "detect"]
    for det in reading["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 60 and 0 <= y1 <= y2 <= 80  # pixels of the uploaded image
    assert "overlay_png" not in reading


def test_overlay_questions_and_repeated_task_fields(client, png) -> None:
    from PIL import Image

    response = client.post("/interpret", files={"file": ("chest.png", png)},
                           data={"tasks": ["classify", "vqa"], "question": ["Is this chest X-ray normal?"],
                                 "overlay": "true"})
    reading = response.json()
    assert reading["tasks"] == ["classify", "vqa"]
    assert [a["question"] for a in reading["answers"]] == ["Is this chest X-ray normal?"]
    picture = Image.open(io.BytesIO(base64.b64decode(reading["overlay_png"])))
    assert picture.format == "PNG" and picture.size[1] >= 80


def _picture(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_the_overlay_layers_stack_to_the_overlay(client, png) -> None:
    """`overlay_layers` gives each layer as a PNG of the overlay's size (null when nothing is drawn on it); stacked in
    their order they are the overlay."""
    from cxrvlm.infer.overlay import LAYERS, compose

    reading = _post(client, "chest.png", png, overlay="true", overlay_layers="true").json()
    overlay = _picture(reading["overlay_png"])
    layers = dict(reading["overlay_layers"])
    assert layers.pop("heatmaps") == {}  # the tiny model has no label head: no maps
    assert tuple(layers) == LAYERS and layers["film"] is not None
    pictures = {name: _picture(b64).convert("RGBA") if b64 else Image.new("RGBA", overlay.size, (0, 0, 0, 0))
                for name, b64 in layers.items()}
    assert {p.size for p in pictures.values()} == {overlay.size}
    assert np.array_equal(np.asarray(compose(pictures)), np.asarray(overlay.convert("RGB")))
    assert layers["masks"] is None  # not asked for; the tiny model's boxes may be none too
    assert (layers["boxes"] is None) == (not reading["detections"])
    assert (layers["heatmap"] is None) == (reading["tb"]["label"] != "tuberculosis" or not reading["saliency"])
    alone = _post(client, "chest.png", png, overlay_layers="true").json()
    assert "overlay_png" not in alone and tuple(alone["overlay_layers"]) == (*LAYERS, "heatmaps")


def _readings_csv(client, body):
    return client.post("/readings.csv", json=body)


def test_the_readings_csv_is_the_table_of_the_command(client, png) -> None:
    """POST /readings.csv tables readings (and films that failed) as `cxrvlm interpret --csv` does, a row each."""
    from cxrvlm.infer import batch

    read = _post(client, "chest.png", png).json()
    failed = _post(client, "broken.png", b"not an image").json()
    items = [{"reading": read, "ms": 231.6}, {"reading": failed, "ms": 3}, {"reading": read}]
    response = _readings_csv(client, items)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == "attachment; filename=readings.csv"
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(table[0]) == batch.COLUMNS and len(table) == 3
    expected = io.StringIO()
    batch.write_csv([batch.row(item["reading"], item.get("ms")) for item in items], expected)
    assert response.text == expected.getvalue()
    assert [r["ms"] for r in table] == ["232", "3", ""] and table[1]["error"] == failed["error"]
    # the page's batch of 100 films fits in the body limit (0.5 MB here; a reading of the built-in model of a
    # 3000 x 2500 film is about 7 kB, so 100 are under 1 MB of the 64 MB default)
    assert _readings_csv(client, [{"reading": read, "ms": 5}] * 100).text.count("\n") == 101
    assert _readings_csv(client, []).text.splitlines() == [",".join(batch.COLUMNS)]


@pytest.mark.parametrize("body, error", [
    ({"reading": {}}, "the body must be a JSON list of {\"reading\": "),
    (["chest"], "item 2 of 2: must be {\"reading\": "),
    ([{"ms": 3}], "item 2 of 2: must be {"),
    ([{"reading": {"image": "a.png", "error": "x"}, "when": 1}], "item 2 of 2: must be {"),
    ([{"reading": {"image": "a.png", "error": "x"}, "ms": -1}], ("item 2 of 2 (a.png): ms must be a finite number of "
                                                                 "milliseconds, 0 or more, got -1")),
    ([{"reading": {"image": "a.png", "error": "x"}, "ms": "5"}], "item 2 of 2 (a.png): ms must be a finite number"),
    ([{"reading": {"image": "a.png", "error": "x"}, "ms": True}], "item 2 of 2 (a.png): ms must be a finite number"),
    ([{"reading": {"image": "a.png", "verdict": "TB"}}], "item 2 of 2 (a.png): not a reading: missing key 'model'"),
])
def test_a_bad_readings_csv_body_is_a_422_naming_the_item(client, png, body, error) -> None:
    good = {"reading": {"image": "first.png", "error": "first.png: not an image"}}
    response = _readings_csv(client, [good, *body] if isinstance(body, list) else body)
    assert response.status_code == 422 and response.json()["error"].startswith(error), response.json()


def test_a_readings_csv_reading_is_checked_against_the_schema(client, png) -> None:
    reading = _post(client, "chest.png", png, overlay="true").json()
    response = _readings_csv(client, [{"reading": reading}])  # its picture is not part of the reading
    assert response.status_code == 422
    assert response.json() == {"image": "chest.png", "error": "item 1 of 1 (chest.png): not a reading: "
                                                              "overlay_png: Extra inputs are not permitted"}
    del reading["overlay_png"]
    reading["tb"]["probability"] = 1.5
    error = _readings_csv(client, [{"reading": reading}]).json()["error"]
    assert error == "item 1 of 1 (chest.png): not a reading: tb.probability: Input should be less than or equal to 1"
    not_json = client.post("/readings.csv", content=b"file,verdict", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["error"].startswith("the body is not JSON")


def test_a_dicom_upload_and_a_prior(client, png, tmp_path) -> None:
    dcm = write_dicom(tmp_path / "study.dcm", gradient(70, 50, maxval=4095, dtype=np.uint16), bits_stored=12,
                      ViewPosition="PA")
    response = client.post("/interpret", files={"file": ("study.dcm", dcm.read_bytes()),
                                                "prior": ("earlier.png", png)},
                           data={"tasks": "classify", "prior_days": "30"})
    reading = response.json()
    assert response.status_code == 200, reading
    assert reading["image"] == "study.dcm" and reading["image_size"] == [70, 50] and reading["prior"] == "earlier.png"


def test_bad_uploads_are_refused_with_the_reason_and_the_server_goes_on(client, png) -> None:
    bad = _post(client, "broken.png", b"\x89PNG\r\n\x1a\n not really a png")
    assert bad.status_code == 400
    assert bad.json()["image"] == "broken.png" and "broken.png" in bad.json()["error"]
    assert "cxrvlm-serve-" not in bad.json()["error"]  # the server's temporary folder is not shown
    empty = _post(client, "empty.png", b"")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    big = _post(client, "big.png", b"x" * (600 * 1024))
    assert big.status_code == 413 and big.json()["error"].endswith("larger than the server's limit of 0.5 MB (the "
                                                                   "X-ray, its prior and the form together)")
    task = _post(client, "chest.png", png, tasks="classify,xray-magic")
    assert task.status_code == 400 and "xray-magic" in task.json()["error"]
    assert _post(client, "..", png).json()["image"] == "upload"  # no name to write to outside its folder
    assert _post(client, "chest.png", png).status_code == 200  # nothing was left broken


def test_a_model_failure_is_a_500_that_names_the_file_and_the_server_goes_on(client, png, monkeypatch) -> None:
    interp = client.app.state.interpreter

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(interp, "interpret_with_pixels", broken)
    response = _post(client, "chest.png", png)
    assert response.status_code == 500
    assert response.json() == {"image": "chest.png",
                               "error": "chest.png: the interpretation failed (RuntimeError: out of memory)"}
    monkeypatch.undo()
    assert _post(client, "chest.png", png).status_code == 200


def test_a_client_cannot_choose_where_the_upload_is_written(client, png) -> None:
    reading = _post(client, "../../outside/chest.png", png).json()
    assert reading["image"] == "chest.png"
    assert not Path("../../outside/chest.png").exists()


def test_the_web_page_is_self_contained_and_posts_to_the_html_reading(client, png) -> None:
    page = client.get("/").text
    assert "Not a diagnosis" in page and "action='/interpret?format=html'" in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing fetched from elsewhere
    # as a browser sends the form: an empty prior file field and an empty interval
    html = client.post("/interpret?format=html", files={"file": ("chest.png", png), "prior": ("", b"")},
                       data={"tasks": ["classify", "detect"], "prior_days": "", "question": ""})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64," in html.text and "Not a diagnosis" in html.text
    error = client.post("/interpret?format=html", files={"file": ("x.png", b"<script>alert(1)</script>")})
    assert error.status_code == 400 and "<script>alert" not in error.text and "x.png" in error.text


def test_the_command_refuses_a_bad_limit_before_loading_a_model(capsys) -> None:
    from cxrvlm.cli import main

    assert main(["serve", "--model", "no-such-model", "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb must be positive, got 0.0" in capsys.readouterr().err
