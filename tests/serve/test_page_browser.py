"""The web page in a real browser (the system Chromium, driven by Playwright; no browser is downloaded), offline: a
film is uploaded and its reading appears with the verdict and the overlay; a file that is not an image shows its
error; a batch of three gives three rows and downloads as CSV. Screenshots go to $CXRVLM_ARTIFACTS (default: the
test's temporary folder) to be looked at."""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from fixtures_images import gradient, write_png

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make setup adds it)")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make setup installs Debian's)")


@pytest.fixture(scope="module")
def server(interpreter):
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
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server)
                  else route.abort())  # offline: anything not from this server fails
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
    page.screenshot(path=str(_artifacts(tmp_path) / "page-reading.png"), full_page=True)


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
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("file,verdict,tb_probability")
    assert '"broken.png"' in lines[2] and "not an image" in lines[2]
    page.screenshot(path=str(_artifacts(tmp_path) / "page-batch.png"), full_page=True)
