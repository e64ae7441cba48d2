"""The web page in a real browser (the system Chromium, driven by Playwright; no browser is downloaded), offline: a
film is uploaded and its reading appears with the verdict and the overlay; the boxes, masks and heatmap of a reading
that has them are hidden by unticking their checkboxes (and the checkbox of one that has none is disabled); a file
that is not an image shows its error; a batch of three gives three rows and downloads as the CSV of
`cxrvlm interpret --csv`. Screenshots go to $CXRVLM_ARTIFACTS (default: the test's temporary folder) to be looked
at."""
from __future__ import annotations

import csv
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fixtures_images import gradient, write_png

from cxrvlm.infer import batch

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make setup adds it)")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make setup installs Debian's)")


@contextmanager
def _serving(interpreter) -> Iterator[str]:
    """`cxrvlm serve` of `interpreter` on a free local port, in a thread: its URL."""
    from cxrvlm.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(interpreter), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(interpreter):
    with _serving(interpreter) as url:
        yield url


@pytest.fixture(scope="module")
def drawing_server():
    """The built-in model calling TB at any probability: its reading of the phantom has boxes, masks and the TB
    heatmap (the tiny random model draws none of them)."""
    from cxrvlm.infer import load

    with _serving(load(threshold=0.0)) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, drawing_server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.route("**/*", lambda route: route.continue_() if route.request.url.startswith((server, drawing_server))
                  else route.abort())  # offline: anything not from these servers fails
        yield tab
        browser.close()


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CXRVLM_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_film_is_read_and_its_overlay_shown(page, server, tmp_path) -> None:
    film = write_png(tmp_path / "chest.png", gradient(96, 72))
    page.goto(server + "/")
    assert "Research use only" in page.inner_text("body")
    page.set_input_files("input[name=file]", str(film))
    page.click("button[type=submit]")
    page.wait_for_selector("#detail #verdict", timeout=30_000)
    assert page.locator("#batch tbody tr").count() == 1 and page.locator("#detail #overlay").is_visible()
    assert "Research use only" in page.inner_text("#detail") and "TB probability" in page.inner_text("#detail")
    # the tiny random model draws no masks and calls no TB: their checkboxes are disabled, saying why
    for layer in ("masks", "heatmap"):
        box = page.locator(f"#detail input[data-layer={layer}]")
        assert box.is_disabled() and box.get_attribute("title")
    assert "only for TB or a finding the reading calls" in page.locator(
        "#detail input[data-layer=heatmap]").get_attribute("title")
    page.screenshot(path=str(_artifacts(tmp_path) / "page-reading.png"), full_page=True)


def _layer(page, name: str):
    return page.locator(f"#overlay img[data-layer={name}]")


def test_boxes_masks_and_heatmap_are_hidden_by_unticking_them(page, drawing_server, tmp_path) -> None:
    from cxrvlm.infer import example_image

    page.goto(drawing_server + "/")
    page.set_input_files("input[name=file]", str(example_image()))
    page.click("button[type=submit]")
    page.wait_for_selector("#detail #verdict", timeout=60_000)
    assert "Verdict: tuberculosis" in page.inner_text("#detail")
    for name in ("boxes", "masks", "heatmap"):
        box = page.get_by_role("checkbox", name=name)
        assert box.is_enabled() and box.is_checked() and _layer(page, name).is_visible()
        assert _layer(page, name).bounding_box() == _layer(page, "film").bounding_box()  # stacked on the film
        box.uncheck()
        assert not _layer(page, name).is_visible() and _layer(page, "film").is_visible()
        box.focus()  # and back, from the keyboard
        page.keyboard.press("Space")
        assert box.is_checked() and _layer(page, name).is_visible()
    # the answers, each with its question type's validation record; the warnings under them
    answers = page.inner_text("#detail #answers")
    assert "What is the projection of this radiograph?" in answers and " right of " in answers
    assert "one fixed answer" in answers
    page.get_by_role("checkbox", name="masks").uncheck()
    assert page.locator("#detail a[download$='.overlay.png']").is_visible()  # the download stays the whole overlay
    page.screenshot(path=str(_artifacts(tmp_path) / "page-layers-masks-off.png"), full_page=True)


def test_a_file_that_is_not_an_image_shows_its_error(page, server, tmp_path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("these are notes, not a radiograph")
    page.goto(server + "/")
    page.set_input_files("input[name=file]", str(bad))
    page.click("button[type=submit]")
    page.wait_for_selector("#batch tbody tr.failed", timeout=30_000)
    assert "notes.png" in page.inner_text("#detail") and "not an image" in page.inner_text("#detail")
    page.screenshot(path=str(_artifacts(tmp_path) / "page-bad-file.png"), full_page=True)


def test_a_batch_of_three_gives_three_rows_and_downloads_as_csv(page, server, tmp_path) -> None:
    films = [write_png(tmp_path / f"film{i}.png", gradient(96 + 8 * i, 72)) for i in range(2)]
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    page.goto(server + "/")
    page.set_input_files("input[name=file]", [str(films[0]), str(bad), str(films[1])])
    page.click("button[type=submit]")
    rows = page.locator("#batch tbody tr")
    page.wait_for_function("document.querySelectorAll('#batch tbody tr.done, #batch tbody tr.failed').length == 3",
                           timeout=60_000)
    assert rows.count() == 3
    assert "error" in rows.nth(1).inner_text() and "broken.png" in rows.nth(1).inner_text()
    rows.nth(0).click()
    assert page.locator("#detail #overlay").is_visible() and "Research use only" in page.inner_text("#detail")
    with page.expect_download() as download:
        page.click("#csv")
    assert download.value.suggested_filename == "readings.csv"
    with open(download.value.path(), newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == batch.COLUMNS and [r["file"] for r in table] == ["film0.png", "broken.png", "film1.png"]
    assert "not an image" in table[1]["error"] and table[1]["quality"] == ""
    assert all(r["ms"].isdigit() for r in table) and not table[0]["error"]
    page.screenshot(path=str(_artifacts(tmp_path) / "page-batch.png"), full_page=True)


def test_the_heatmap_shows_tb_or_any_called_findings_map(page, drawing_server, tmp_path) -> None:
    """The built-in model calls no finding on the phantom, so the page's fetch of the reading adds one more map (the
    masks layer, a picture the page can tell apart) as a called finding's: the select swaps it into the heatmap."""
    from cxrvlm.infer import example_image

    tab = page.context.browser.new_page()  # its own tab: the script below stays out of the other tests
    tab.add_init_script("""
        const fetched = window.fetch;
        window.fetch = async (url, options) => {
          const response = await fetched(url, options);
          if (!String(url).startsWith("/interpret")) return response;
          const reading = await response.json();
          reading.overlay_layers.heatmaps["covid-19"] = reading.overlay_layers.masks;
          return new Response(JSON.stringify(reading), {headers: {"Content-Type": "application/json"}});
        };""")
    try:
        tab.goto(drawing_server + "/")
        tab.set_input_files("input[name=file]", str(example_image()))
        tab.click("button[type=submit]")
        tab.wait_for_selector("#detail #verdict", timeout=60_000)
        heat = _layer(tab, "heatmap")
        tb_map = heat.get_attribute("src")
        choose = tab.get_by_label("heatmap of")
        assert choose.input_value() == "tuberculosis"
        choose.select_option("covid-19")
        assert heat.get_attribute("src") == _layer(tab, "masks").get_attribute("src") != tb_map
        tab.screenshot(path=str(_artifacts(tmp_path) / "page-heatmap-of-a-finding.png"), full_page=True)
        choose.select_option("tuberculosis")
        assert heat.get_attribute("src") == tb_map
    finally:
        tab.close()
